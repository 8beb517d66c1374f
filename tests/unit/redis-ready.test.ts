import { EventEmitter } from "node:events";
import type { Redis } from "ioredis";
import { afterEach, describe, expect, it, vi } from "vitest";
import { redisReady } from "../../layers/chat/cache/redis-client.ts";

// The health check awaits redisReady before every PING: on a client that is already connected it must not wait
// for a "ready" event that will not come again (each check would then take the whole timeout).
function fakeClient(status: string): Redis {
  return Object.assign(new EventEmitter(), { status }) as unknown as Redis;
}

/** Whether the promise has settled once pending callbacks have run, with the timers frozen. */
async function settledNow(p: Promise<void>): Promise<boolean> {
  let settled = false;
  p.then(() => {
    settled = true;
  });
  await vi.advanceTimersByTimeAsync(0);
  return settled;
}

afterEach(() => {
  vi.useRealTimers();
});

describe("redisReady", () => {
  it("returns at once for a client that is already ready", async () => {
    vi.useFakeTimers();
    expect(await settledNow(redisReady(fakeClient("ready"), 60_000))).toBe(true);
  });

  it("waits for the first ready event, no longer", async () => {
    vi.useFakeTimers();
    const client = fakeClient("connecting");
    const ready = redisReady(client, 60_000);
    expect(await settledNow(ready)).toBe(false);
    client.emit("ready");
    expect(await settledNow(ready)).toBe(true);
    expect(vi.getTimerCount()).toBe(0); // the timeout was cleared
  });

  it("gives up after the timeout when the client never connects", async () => {
    vi.useFakeTimers();
    const client = fakeClient("reconnecting");
    const ready = redisReady(client, 500);
    await vi.advanceTimersByTimeAsync(499);
    expect(await settledNow(ready)).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(await settledNow(ready)).toBe(true);
  });
});
