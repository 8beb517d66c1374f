import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { CPU_ROLES, type CpuSnapshot, CpuTally, cpuSnapshot } from "../../bench/lib/process-cpu.ts";

/** Spins until this process has used `ms` more CPU (not wall time: other tests may share the cores). */
const burnCpu = (ms: number) => {
  const used = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const end = used() + ms;
  while (used() < end);
};

const snapshot = (byRole: Partial<CpuSnapshot["byRole"]>, busy: number, idle: number): CpuSnapshot => ({
  byRole: { ...Object.fromEntries(CPU_ROLES.map((r) => [r, 0])), ...byRole } as CpuSnapshot["byRole"],
  machineBusy: busy,
  machineIdle: idle,
});

describe("CpuTally", () => {
  it("sums spans and divides by the operations they ran", () => {
    const t = new CpuTally();
    t.add(
      snapshot({ worker: 100, postgres: 50 }, 1000, 500),
      snapshot({ worker: 300, postgres: 90 }, 1400, 600),
      100,
    );
    t.add(snapshot({ worker: 0, redis: 10 }, 0, 0), snapshot({ worker: 100, redis: 40 }, 200, 100), 100);
    const per = t.perOp();
    expect(per?.worker).toBe(1.5); // (200 + 100) / 200
    expect(per?.postgres).toBe(0.2);
    expect(per?.redis).toBe(0.15);
    expect(per?.["machine busy"]).toBe(3);
    expect(per?.["machine idle"]).toBe(1);
  });

  it("leaves out spans it cannot measure and reports nothing without operations", () => {
    const t = new CpuTally();
    t.add(undefined, snapshot({ worker: 10 }, 10, 10), 5);
    t.add(snapshot({}, 0, 0), snapshot({ worker: 10 }, 10, 10), 0);
    expect(t.perOp()).toBeUndefined();
  });

  it("measure() counts warm-up operations and skips a span it is told to", async () => {
    const t = new CpuTally();
    await t.measure(process.pid, async () => ({ n: 0, errors: 0, warmupOps: 0 }), false);
    expect(t.perOp()).toBeUndefined();
    await t.measure(process.pid, async () => {
      burnCpu(60);
      return { n: 3, errors: 1, warmupOps: 6 };
    });
    // The burn ran in this process, which is the worker here (pid given), not the load generator: ≈ 60 ms over
    // 10 operations (warm-up included), give or take a 10 ms tick; over 4 (warm-up left out) it would be ≈ 15.
    const worker = t.perOp()?.worker ?? 0;
    expect(worker).toBeGreaterThan(4);
    expect(worker).toBeLessThan(11);
  });
});

// A child that, on "go", uses 300 ms of CPU, says "done" and stays alive until its stdin closes.
const CHILD = `process.stdin.once("data", () => {
  const used = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
  const end = used() + 300;
  while (used() < end);
  process.stdout.write("done\\n");
  process.stdin.once("end", () => process.exit(0));
});`;

describe.runIf(process.platform === "linux")("cpuSnapshot", () => {
  it("charges a busy child to the worker and this process to the load generator", async () => {
    const child = spawn(process.execPath, ["-e", CHILD], { stdio: ["pipe", "pipe", "ignore"] });
    const done = once(child.stdout, "data");
    await new Promise((r) => setTimeout(r, 200)); // the child's own start-up, before the first snapshot
    const before = cpuSnapshot(child.pid as number) as CpuSnapshot;
    child.stdin.write("go\n");
    burnCpu(200);
    await done;
    const after = cpuSnapshot(child.pid as number) as CpuSnapshot;
    child.stdin.end();
    await once(child, "exit");
    // /proc counts in 10 ms ticks: allow a tick or two
    expect(after.byRole.worker - before.byRole.worker).toBeGreaterThanOrEqual(280);
    expect(after.byRole["load generator"] - before.byRole["load generator"]).toBeGreaterThanOrEqual(180);
    expect(after.machineBusy - before.machineBusy).toBeGreaterThanOrEqual(460);
  });
});
