import { vi } from "vitest";

/**
 * What the process wrote to stdout and stderr (Powertools' log lines and EMF metrics) while `work` ran, kept from
 * the test's output; `work`'s result, or its error rethrown once the writes are restored.
 */
export async function capturedOutput<T>(work: () => Promise<T>): Promise<{ result: T; printed: string }> {
  const printed: string[] = [];
  const keep = ((chunk: unknown) => {
    printed.push(String(chunk));
    return true;
  }) as typeof process.stdout.write;
  const spies = [
    vi.spyOn(process.stdout, "write").mockImplementation(keep),
    vi.spyOn(process.stderr, "write").mockImplementation(keep),
  ];
  try {
    return { result: await work(), printed: printed.join("") };
  } finally {
    for (const spy of spies) spy.mockRestore();
  }
}

/** The JSON lines of captured output (log lines, EMF), parsed; other lines left out. */
export const jsonLines = (printed: string): Record<string, unknown>[] =>
  printed
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
