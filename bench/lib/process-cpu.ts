import { readdirSync, readFileSync } from "node:fs";

/**
 * CPU time of every process on the machine, by role, from Linux's /proc: what one request costs the whole
 * machine (the function's worker, the load generator, Postgres, Redis), not only the process being
 * profiled. On 2 shared cores a throughput ratio is a ratio of these sums, so they say where a path's
 * extra cost is. A V8 profile cannot: it samples the main thread's stack, so time spent preempted inside a
 * socket write (the woken Postgres backend taking the core) shows up as `writev`.
 * Linux only (undefined elsewhere); /proc counts in clock ticks of 10 ms (USER_HZ = 100).
 */
export const CPU_ROLES = ["worker", "load generator", "postgres", "redis", "other"] as const;
export type CpuRole = (typeof CPU_ROLES)[number];

export interface CpuSnapshot {
  /** ms of CPU (user + system) used so far by the processes of each role (the live ones). */
  byRole: Record<CpuRole, number>;
  /** ms of all cores busy (everything but idle and iowait) and idle, from /proc/stat. */
  machineBusy: number;
  machineIdle: number;
}

/** ms of CPU per operation between two snapshots, by role, plus the machine's busy and idle time. */
export type CpuPerOp = Record<CpuRole | "machine busy" | "machine idle", number>;

const TICK_MS = 10;

function roleOf(pid: number, comm: string, workerPid: number): CpuRole {
  if (pid === workerPid) return "worker";
  if (pid === process.pid) return "load generator";
  if (comm.startsWith("postgres")) return "postgres";
  if (comm.startsWith("redis-server")) return "redis";
  return "other";
}

/** The CPU used so far, `workerPid` counted as the worker and this process as the load generator. */
export function cpuSnapshot(workerPid: number): CpuSnapshot | undefined {
  let stat: string;
  try {
    stat = readFileSync("/proc/stat", "utf8");
  } catch {
    return undefined;
  }
  const byRole = Object.fromEntries(CPU_ROLES.map((r) => [r, 0])) as Record<CpuRole, number>;
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    let line: string;
    try {
      line = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ..." — comm may contain spaces and parentheses: split after the last ")".
    const close = line.lastIndexOf(")");
    const comm = line.slice(line.indexOf("(") + 1, close);
    const fields = line.slice(close + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of the line)
    byRole[roleOf(pid, comm, workerPid)] += ticks * TICK_MS;
  }
  const cpu = (stat.split("\n")[0] ?? "").trim().split(/\s+/).slice(1).map(Number);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
  // user nice system idle iowait irq softirq (steal is time the hypervisor gave to other guests; guest time
  // is already inside user)
  const total = cpu.slice(0, 7).reduce((a, b) => a + b, 0);
  return { byRole, machineBusy: (total - idle) * TICK_MS, machineIdle: idle * TICK_MS };
}

/** Whether a round's CPU is tallied: not the first round, whose warm-up pays for JIT and new connections, unless it is the only one. */
export const tallyRound = (round: number, rounds: number): boolean => round > 0 || rounds === 1;

/**
 * Sums of several measured spans (between pairs of snapshots) per operation. A process that exited within a
 * span loses its time from the role, so spans should not straddle a worker's start or end.
 */
export class CpuTally {
  readonly #ms: Record<string, number> = {};
  #ops = 0;

  add(before: CpuSnapshot | undefined, after: CpuSnapshot | undefined, ops: number): void {
    if (!before || !after || ops <= 0) return;
    for (const r of CPU_ROLES)
      this.#ms[r] = (this.#ms[r] ?? 0) + Math.max(0, after.byRole[r] - before.byRole[r]);
    this.#ms["machine busy"] = (this.#ms["machine busy"] ?? 0) + after.machineBusy - before.machineBusy;
    this.#ms["machine idle"] = (this.#ms["machine idle"] ?? 0) + after.machineIdle - before.machineIdle;
    this.#ops += ops;
  }

  /**
   * Runs a load part and adds what it cost the machine, per operation it ran (warm-up included), unless
   * `include` is false (e.g. a first round whose warm-up still pays for JIT and new connections).
   */
  async measure<T extends { n: number; errors: number; warmupOps?: number }>(
    workerPid: number,
    run: () => Promise<T>,
    include = true,
  ): Promise<T> {
    const before = include ? cpuSnapshot(workerPid) : undefined;
    const r = await run();
    if (include) this.add(before, cpuSnapshot(workerPid), (r.warmupOps ?? 0) + r.n + r.errors);
    return r;
  }

  perOp(): CpuPerOp | undefined {
    if (this.#ops === 0) return undefined;
    const round = (v: number) => Math.round((v / this.#ops) * 1000) / 1000;
    return Object.fromEntries(Object.entries(this.#ms).map(([k, v]) => [k, round(v)])) as CpuPerOp;
  }
}
