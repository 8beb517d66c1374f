import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { InvocationLog, LOG_TAIL_BYTES } from "../../local/invocation-log.ts";

const MODULE = fileURLToPath(new URL("../../local/invocation-log.ts", import.meta.url));

/**
 * Two invocations at once in a plain node process (its console writes to process.stdout, as under
 * `npm start`; a test runner swaps the console), each writing through console.*, process.stdout/stderr and
 * a Console of its own on process.stdout (as Powertools Logger does), with turns interleaved by awaits.
 */
const SCRIPT = `
import { Console } from "node:console";
import { InvocationLog, withInvocationLog } from ${JSON.stringify(MODULE)};
const own = new Console({ stdout: process.stdout, stderr: process.stderr });
const tick = () => new Promise((r) => setTimeout(r, 5));
const invocation = (name) => {
  const log = new InvocationLog();
  const done = withInvocationLog(log, async () => {
    console.log("%s: console.log", name);
    await tick();
    process.stdout.write(name + ": stdout.write\\n");
    setTimeout(() => console.error(name + ": console.error in a timer"), 1);
    await tick();
    own.info(JSON.stringify({ message: name + ": own Console" }));
    await Promise.resolve().then(() => process.stderr.write(Buffer.from(name + ": stderr bytes\\n")));
  });
  return done.then(() => log.toString());
};
console.log("outside any invocation");
const [a, b] = await Promise.all([invocation("a"), invocation("b")]);
process.stderr.write("RESULT" + JSON.stringify({ a, b }) + "\\n");
`;

describe("invocation log capture", () => {
  it("keeps each invocation's own output, once per line, and still passes it through", async () => {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ["--input-type=module", "-e", SCRIPT],
      { timeout: 20_000 },
    );
    const result = JSON.parse(stderr.split("RESULT")[1] ?? "") as { a: string; b: string };
    for (const name of ["a", "b"] as const) {
      const other = name === "a" ? "b" : "a";
      expect(result[name]).toBe(
        [
          `${name}: console.log`,
          `${name}: stdout.write`,
          `${name}: console.error in a timer`,
          `{"message":"${name}: own Console"}`,
          `${name}: stderr bytes`,
          "",
        ].join("\n"),
      );
      expect(result[name]).not.toContain(`${other}:`);
      expect(stdout).toContain(`${name}: console.log\n`);
      expect(stdout).toContain(`{"message":"${name}: own Console"}\n`);
      expect(stderr).toContain(`${name}: console.error in a timer\n`);
    }
    expect(stdout).toContain("outside any invocation\n");
    expect(result.a).not.toContain("outside");
  });

  it("keeps the last 4 KB (at least 4,096 bytes' worth of text)", () => {
    const log = new InvocationLog();
    for (let i = 0; i < 200; i++) log.append(`line ${String(i).padStart(3, "0")} ${"x".repeat(40)}\n`);
    const kept = log.toString();
    expect(kept.length).toBe(LOG_TAIL_BYTES);
    expect(kept.endsWith(`line 199 ${"x".repeat(40)}\n`)).toBe(true);
    expect(kept).not.toContain("line 100");
  });
});
