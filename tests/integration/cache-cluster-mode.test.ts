import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sessionReadCommands } from "../../layers/chat/cache/session-cache.ts";
import { RedisRateLimiter } from "../../layers/chat/ratelimit/redis-limiter.ts";
import { type ChatFixture, chatFixture, testRedis } from "../helpers/chat-fixture.ts";
import { type PrivateRedis, startPrivateRedis } from "../helpers/private-redis.ts";

/**
 * The cache as ElastiCache Serverless (Valkey, cluster mode) runs it: a one-node cluster holding every slot, which a
 * plain client reaches as the functions reach the serverless endpoint, and which refuses, as it does, a command,
 * transaction or script over keys of more than one slot and a SELECT of another database. The cache guard turns a
 * refused command into a miss, so each path here also checks that it was served from Redis, and the server's own
 * counters that it refused nothing.
 */
let cluster: PrivateRedis;
let admin: Redis;
let f: ChatFixture;
beforeAll(async () => {
  cluster = await startPrivateRedis({ cluster: true });
  admin = new Redis(cluster.url);
  // the product's 50 ms command timeout would turn a busy CI machine into misses; refusals are what is checked here
  f = await chatFixture({ redisUrl: cluster.url, env: { REDIS_COMMAND_TIMEOUT_MS: "1000" } });
});
afterAll(async () => {
  await f?.close();
  admin?.disconnect();
  await cluster?.stop();
});

/** Commands the server failed or rejected since `CONFIG RESETSTAT`, and any CROSSSLOT it answered. */
async function refusals(): Promise<string[]> {
  const stats = `${await admin.info("commandstats")}\n${await admin.info("errorstats")}`;
  return stats
    .split(/\r?\n/)
    .filter((l) => /(rejected_calls|failed_calls)=[1-9]/.test(l) || l.startsWith("errorstat_CROSSSLOT"));
}

describe("the server stands in for ElastiCache Serverless", () => {
  it("refuses keys of two slots in one command, transaction or script, and SELECT of another database", async () => {
    await expect(admin.mset("wcm:a", "1", "wcm:b", "2")).rejects.toThrow(/CROSSSLOT/);
    await expect(admin.multi().set("wcm:a", "1").set("wcm:b", "2").exec()).rejects.toThrow(/CROSSSLOT/);
    await expect(admin.eval("return 1", 2, "wcm:a", "wcm:b")).rejects.toThrow(/CROSSSLOT/);
    await expect(admin.select(1)).rejects.toThrow(/SELECT is not allowed in cluster mode/);
    // one hash tag, one slot: the cache's own keys
    await expect(admin.mset("{wcm}:a", "1", "{wcm}:b", "2")).resolves.toBe("OK");
  });

  it("a REDIS_URL that selects database 1 gets database 0 there, without an error a command sees (synth refuses it)", async () => {
    const client = testRedis(`${cluster.url}/1`, f.config);
    try {
      const key = `{wcm}:db-${randomUUID()}`;
      await new Promise((ready) => client.once("ready", ready));
      await client.set(key, "written through /1");
      expect(await admin.get(key)).toBe("written through /1"); // admin is on database 0
    } finally {
      client.disconnect();
    }
  });
});

describe("the cache's multi-key paths on a cluster-mode server", () => {
  beforeAll(() => admin.config("RESETSTAT"));

  it("a session's reads, posts, edits, deletes and erase are served from Redis, none refused", async () => {
    const created = await f.chat.createSession({});
    const id = created.session.session_id;
    const auth = () => f.chat.authorize(id, created.token);

    const first = await f.chat.postMessage(await auth(), "one"); // a fill (script over both keys), then MGET
    await f.chat.postMessage(await auth(), "two"); // the append script
    const page = await f.chat.history(await auth(), 0, 50);
    expect(page.fromCache).toBe(true);
    expect(page.messages.map((m) => m.content)).toContain("two");

    const posted = first.message;
    await f.chat.editMessage(await auth(), { message_id: posted.message_id, content: "one, edited" });
    const edited = await f.chat.history(await auth(), 0, 50);
    expect(edited.fromCache).toBe(true);
    expect(edited.messages.map((m) => m.content)).toContain("one, edited");

    await f.chat.deleteMessage(await auth(), posted.message_id);
    const afterDelete = await f.chat.history(await auth(), 0, 50);
    expect(afterDelete.fromCache).toBe(true);
    expect(afterDelete.messages.map((m) => m.message_id)).not.toContain(posted.message_id);

    // each read the rate limiter sends in its round trip, beside its sliding-window scripts (one key each)
    const limiter = new RedisRateLimiter(f.redis!, { keyPrefix: `rl-cluster:${randomUUID()}:` });
    const policy = { name: "per-token", limit: 10, windowSeconds: 60 };
    for (const read of ["whole", "session", "head", "tail"] as const) {
      const { results, got } = await limiter.checkAndGet(
        [
          { policy, key: "token" },
          { policy: { ...policy, name: "per-ip" }, key: "192.0.2.1" },
        ],
        randomUUID(),
        sessionReadCommands(id, read),
      );
      expect(results.every((r) => r.allowed)).toBe(true);
      expect(got).toBeDefined();
      const found = f.sessionCache!.lookupPrefetched({ sessionId: id, read, values: got!, sentAt: 0 });
      expect(found.kind).toBe("hit");
    }

    await f.chat.eraseSession(await auth()); // the tombstone: MULTI over both keys
    expect((await f.sessionCache!.get(id)).kind).toBe("erased");
    expect(f.cache!.trusted).toBe(true);
    expect(await refusals()).toEqual([]);
  });

  it("invalidations of many sessions (a pipeline of scripts, each over one session's keys) are applied, none refused", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const created = await f.chat.createSession({});
      const id = created.session.session_id;
      await f.chat.postMessage(await f.chat.authorize(id, created.token), `hello ${i}`);
      expect((await f.sessionCache!.get(id)).kind).toBe("hit");
      ids.push(id);
    }
    const gone = randomUUID(); // a session no longer in Postgres: the erased tombstone
    await f.db.pool.query("INSERT INTO cache_invalidations (session_id) SELECT unnest($1::uuid[])", [
      [...ids, gone],
    ]);
    expect(await f.cache!.drainInvalidations()).toBe(true);
    for (const id of ids) expect((await f.sessionCache!.get(id)).kind).toBe("miss");
    expect((await f.sessionCache!.get(gone)).kind).toBe("erased");
    await f.cache!.ping();
    expect(await refusals()).toEqual([]);
  });
});

describe("docs/deploy.md, after a database restore", () => {
  it("the command that drops the cache's entries drops every session's, none refused, and keeps the rate limiter's", async () => {
    const deploy = readFileSync(new URL("../../docs/deploy.md", import.meta.url), "utf8");
    const documented = /`(redis-cli [^`]*--pattern 'chat:\{\*'[^`]*)`/.exec(deploy)?.[1];
    expect(documented).toBeDefined();
    // as run from a host in the VPC, against this server instead of the cache's endpoint
    const command = documented!.replaceAll('--tls -h "$HOST"', `-h 127.0.0.1 -p ${cluster.port}`);
    expect(command).not.toContain("$HOST");

    const ids = Array.from({ length: 40 }, () => randomUUID());
    const seed = admin.pipeline();
    for (const id of ids) seed.set(`chat:{${id}}:s`, "x").set(`chat:{${id}}:h`, "y");
    await seed.exec();
    const limiterKey = `rl:per-ip:${randomUUID()}`;
    await admin.set(limiterKey, "z");

    execFileSync("bash", ["-o", "pipefail", "-c", command], { stdio: "pipe" });
    const left: string[] = [];
    for await (const keys of admin.scanStream({ match: "chat:{*", count: 1000 })) left.push(...keys);
    expect(left).toEqual([]);
    expect(await admin.exists(limiterKey)).toBe(1);
  });
});
