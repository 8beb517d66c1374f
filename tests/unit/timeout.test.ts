import { afterEach, describe, expect, it, vi } from "vitest";
import { withTimeout } from "../../layers/chat/timeout.ts";

afterEach(() => vi.useRealTimers());

describe("withTimeout", () => {
  it("settles with the work when it is first, and never calls onTimeout (which may abort the work) afterwards", async () => {
    vi.useFakeTimers();
    const onTimeout = vi.fn(() => new Error("late"));
    await expect(withTimeout(Promise.resolve("done"), 100, onTimeout)).resolves.toBe("done");
    await expect(withTimeout(Promise.reject(new Error("boom")), 100, onTimeout)).rejects.toThrow("boom");
    // the deadline timers are gone: nothing left to fire, nothing keeps the process alive
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(1000);
    expect(onTimeout).not.toHaveBeenCalled();
  });

  it("rejects with onTimeout's error at the deadline, and the work's later rejection is not unhandled", async () => {
    vi.useFakeTimers();
    let fail: (e: Error) => void = () => {};
    const work = new Promise<never>((_, reject) => {
      fail = reject;
    });
    let settled = false;
    const result = withTimeout(work, 100, () => new Error("deadline")).finally(() => {
      settled = true;
    });
    const rejected = expect(result).rejects.toThrow("deadline");
    await vi.advanceTimersByTimeAsync(99);
    expect(settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await rejected;
    // vitest fails the run on an unhandled rejection
    fail(new Error("too late"));
    await Promise.resolve();
  });
});
