/**
 * kafkajs (2.2.4) schedules a timer with a negative delay on Node 24, which prints a TimeoutNegativeWarning
 * per process: harmless, and noise in the bench output. Every other warning is still printed.
 */
export function quietKnownWarnings(): void {
  process.removeAllListeners("warning");
  process.on("warning", (w) => {
    if (w.name === "TimeoutNegativeWarning") return;
    process.stderr.write(`${w.name}: ${w.message}\n`);
  });
}
