/** The shape of a V8 .cpuprofile (`node --cpu-prof`, the inspector's Profiler.stop) and how its samples are timed. */
export interface CpuProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
export interface CpuProfile {
  nodes: CpuProfileNode[];
  /** The node id on top of the stack at each sample. */
  samples: number[];
  /** µs since the previous sample (since startTime for the first). */
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/**
 * Sample i's weight in µs: timeDeltas[i], the interval that ends at it. (DevTools gives a sample the interval that
 * follows it, timeDeltas[i + 1]; the two differ only in which end of the profile loses one interval.) Every tool
 * here uses this one, so a flame graph's total and profile-summary's agree.
 */
export function sampleDurationUs(profile: CpuProfile, i: number): number {
  return profile.timeDeltas[i] ?? 0;
}
