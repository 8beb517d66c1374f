import { type ChildProcess, spawn } from "node:child_process";

/**
 * A broker that accepts connections and then answers nothing: a TCP server in a process of its own, stopped
 * (SIGSTOP) once listening, so the kernel still completes connects. `stop` kills it.
 */
export async function startHungBroker(): Promise<{ port: number; stop(): void }> {
  const broker: ChildProcess = spawn(
    process.execPath,
    [
      "-e",
      `const s = require("node:net").createServer((c) => c.on("error", () => {}));
       s.listen(0, "127.0.0.1", () => console.log(s.address().port));`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const port = await new Promise<number>((resolve) =>
    broker.stdout?.once("data", (d) => resolve(Number(String(d).trim()))),
  );
  broker.kill("SIGSTOP");
  return { port, stop: () => broker.kill("SIGKILL") };
}
