import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";

/** A redis-server of the test's own on a free port, so stopping it leaves the shared one up. */
export interface PrivateRedis {
  url: string;
  port: number;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** SIGSTOP / SIGCONT: the server keeps its socket but answers nothing (a stall, not a crash). */
  pause(): void;
  resume(): void;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

/**
 * `cluster: true` starts a one-node cluster holding every slot, as ElastiCache Serverless presents itself (cluster
 * mode, one virtual node): a plain client reaches every key without MOVED, but the server refuses what the cache
 * would refuse: a multi-key command, transaction or script over keys of more than one slot (CROSSSLOT) and SELECT
 * of a database other than 0. A plain redis-server enforces neither.
 */
export async function startPrivateRedis(opts: { cluster?: boolean } = {}): Promise<PrivateRedis> {
  const port = await freePort();
  let proc: ChildProcess | undefined;
  // a fresh node each start: a cluster's config file keeps its slots, and a stopped server's data is gone anyway
  const clusterArgs = (): string[] => {
    if (!opts.cluster) return [];
    const dir = mkdtempSync(join(tmpdir(), "private-redis-cluster-"));
    return ["--cluster-enabled", "yes", "--cluster-config-file", join(dir, "nodes.conf"), "--dir", dir];
  };
  const start = async () => {
    const args = clusterArgs();
    proc = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", ...args],
      {
        stdio: "ignore",
      },
    );
    const dir = args.at(-1);
    if (dir) proc.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    const probe = new Redis({ port, host: "127.0.0.1", lazyConnect: true, retryStrategy: () => null });
    probe.on("error", () => {});
    for (let i = 0; i < 100; i++) {
      try {
        await probe.connect();
        await probe.ping();
        if (opts.cluster) await clusterReady(probe);
        probe.disconnect();
        return;
      } catch {
        probe.disconnect();
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    throw new Error("private redis-server did not start");
  };
  const stop = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once("exit", () => resolve());
      p.kill("SIGCONT");
      p.kill("SIGKILL");
    });
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    stop,
    pause: () => proc?.kill("SIGSTOP"),
    resume: () => proc?.kill("SIGCONT"),
  };
}

/** Gives a new cluster node every slot and waits until it serves them (`cluster_state:ok`). */
async function clusterReady(node: Redis): Promise<void> {
  const info = async () => String(await node.call("CLUSTER", "INFO"));
  if (/cluster_slots_assigned:0\b/.test(await info())) await node.call("CLUSTER", "ADDSLOTSRANGE", 0, 16383);
  for (let i = 0; i < 100; i++) {
    if ((await info()).includes("cluster_state:ok")) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("private redis cluster did not reach cluster_state:ok");
}
