import { existsSync } from "node:fs";
import koffi, { type LibraryHandle } from "koffi";

/**
 * koffi bindings for the parts of librdkafka (Debian `librdkafka1`) that run its built-in
 * Kafka-protocol mock cluster. Pointers are BigInts in koffi 3.
 */
export type Ptr = bigint;

export interface Librdkafka {
  path: string;
  version(): string;
  confNew(): Ptr;
  confSet(conf: Ptr, name: string, value: string): void;
  newProducer(conf: Ptr): Ptr;
  destroy(rk: Ptr): void;
  mockClusterNew(rk: Ptr, brokers: number): Ptr;
  mockClusterDestroy(mcluster: Ptr): void;
  mockBootstraps(mcluster: Ptr): string;
  mockTopicCreate(mcluster: Ptr, topic: string, partitions: number, replication: number): number;
  mockBrokerSetDown(mcluster: Ptr, brokerId: number): number;
  mockBrokerSetUp(mcluster: Ptr, brokerId: number): number;
  mockBrokerSetRtt(mcluster: Ptr, brokerId: number, rttMs: number): number;
  mockPushRequestErrors(mcluster: Ptr, apiKey: number, errorCodes: number[]): void;
  /** Moves a partition's leadership to this broker (the cluster's metadata says so from then on). */
  mockPartitionSetLeader(mc: Ptr, topic: string, partition: number, brokerId: number): number;
  errName(code: number): string;
}

const CANDIDATES = [
  "/usr/lib/x86_64-linux-gnu/librdkafka.so.1",
  "/usr/lib/aarch64-linux-gnu/librdkafka.so.1",
  "/usr/lib/librdkafka.so.1",
  "/usr/local/lib/librdkafka.so.1",
];
const RD_KAFKA_PRODUCER = 0;
const RD_KAFKA_CONF_OK = 0;

let cached: Librdkafka | undefined;

/**
 * Loads librdkafka (once, unless a path is given). Throws, never skips, so a missing library
 * fails the tests loudly.
 */
export function loadLibrdkafka(explicitPath?: string): Librdkafka {
  if (cached && !explicitPath) return cached;
  const path = explicitPath ?? process.env.LIBRDKAFKA_PATH ?? CANDIDATES.find((p) => existsSync(p));
  if (!path) {
    throw new Error(
      `librdkafka not found (looked in ${CANDIDATES.join(", ")}). Install it with ` +
        "`apt-get install -y librdkafka1` or set LIBRDKAFKA_PATH to librdkafka.so.1.",
    );
  }
  let lib: LibraryHandle;
  try {
    lib = koffi.load(path);
  } catch (err) {
    throw new Error(
      `cannot load librdkafka from ${path} (apt-get install -y librdkafka1, or set LIBRDKAFKA_PATH): ${(err as Error).message}`,
      { cause: err },
    );
  }
  const bound = bind(lib, path);
  if (!explicitPath) cached = bound;
  return bound;
}

function bind(lib: LibraryHandle, path: string): Librdkafka {
  const versionStr = lib.func("const char *rd_kafka_version_str(void)");
  const errName = lib.func("const char *rd_kafka_err2name(int err)");
  const confNew = lib.func("void *rd_kafka_conf_new(void)");
  const confSet = lib.func(
    "int rd_kafka_conf_set(void *conf, const char *name, const char *value, _Out_ uint8_t *errstr, size_t errstr_size)",
  );
  const kNew = lib.func(
    "void *rd_kafka_new(int type, void *conf, _Out_ uint8_t *errstr, size_t errstr_size)",
  );
  const destroy = lib.func("void rd_kafka_destroy(void *rk)");
  const mcNew = lib.func("void *rd_kafka_mock_cluster_new(void *rk, int broker_cnt)");
  const mcDestroy = lib.func("void rd_kafka_mock_cluster_destroy(void *mcluster)");
  const mcBootstraps = lib.func("const char *rd_kafka_mock_cluster_bootstraps(void *mcluster)");
  const topicCreate = lib.func(
    "int rd_kafka_mock_topic_create(void *mcluster, const char *topic, int partition_cnt, int replication_factor)",
  );
  const setDown = lib.func("int rd_kafka_mock_broker_set_down(void *mcluster, int32_t broker_id)");
  const setUp = lib.func("int rd_kafka_mock_broker_set_up(void *mcluster, int32_t broker_id)");
  const setRtt = lib.func("int rd_kafka_mock_broker_set_rtt(void *mcluster, int32_t broker_id, int rtt_ms)");
  // The array variant avoids koffi's variadic calling; same effect as rd_kafka_mock_push_request_errors.
  const setLeader = lib.func(
    "int rd_kafka_mock_partition_set_leader(void *mcluster, const char *topic, int32_t partition, int32_t broker_id)",
  );
  const pushErrors = lib.func(
    "void rd_kafka_mock_push_request_errors_array(void *mcluster, int16_t api_key, size_t cnt, const int *errors)",
  );

  const cstr = (buf: Buffer) => buf.toString("utf8", 0, Math.max(0, buf.indexOf(0)));

  return {
    path,
    version: () => versionStr() as string,
    errName: (code) => errName(code) as string,
    confNew: () => confNew() as Ptr,
    confSet(conf, name, value) {
      const errstr = Buffer.alloc(512);
      if (confSet(conf, name, value, errstr, errstr.length) !== RD_KAFKA_CONF_OK) {
        throw new Error(`rd_kafka_conf_set(${name}): ${cstr(errstr)}`);
      }
    },
    newProducer(conf) {
      const errstr = Buffer.alloc(512);
      const rk = kNew(RD_KAFKA_PRODUCER, conf, errstr, errstr.length) as Ptr | null;
      if (!rk) throw new Error(`rd_kafka_new failed: ${cstr(errstr)}`);
      return rk;
    },
    destroy: (rk) => destroy(rk),
    mockClusterNew: (rk, brokers) => mcNew(rk, brokers) as Ptr,
    mockClusterDestroy: (mc) => mcDestroy(mc),
    mockBootstraps: (mc) => mcBootstraps(mc) as string,
    mockTopicCreate: (mc, topic, partitions, replication) => topicCreate(mc, topic, partitions, replication),
    mockBrokerSetDown: (mc, id) => setDown(mc, id),
    mockBrokerSetUp: (mc, id) => setUp(mc, id),
    mockBrokerSetRtt: (mc, id, ms) => setRtt(mc, id, ms),
    mockPushRequestErrors: (mc, apiKey, codes) =>
      pushErrors(mc, apiKey, codes.length, Int32Array.from(codes)),
    mockPartitionSetLeader: (mc, topic, partition, brokerId) => setLeader(mc, topic, partition, brokerId),
  };
}
