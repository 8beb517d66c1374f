import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type RunnerProcess, startRunnerProcess } from "../helpers/runner-process.ts";

const alive = (pid: number | undefined) => pid !== undefined && existsSync(`/proc/${pid}`);

describe("npm start (local/main.ts) shutdown", () => {
  it("exits on SIGTERM while a client is half-way through a body, and stops its embedded Postgres", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "local-shutdown-"));
    let runner: RunnerProcess | undefined;
    let postmaster: number | undefined;
    try {
      runner = await startRunnerProcess({ env: { LOCAL_PG_DIR: dataDir, LOCAL_SCHEDULES: "off" } });
      postmaster = Number((await readFile(join(dataDir, "postmaster.pid"), "utf8")).split("\n")[0]);
      expect(alive(postmaster)).toBe(true);

      // A real socket that announces 100 bytes of body and sends 5 of them, then waits.
      const socket = connect(runner.port, "127.0.0.1");
      socket.on("error", () => {});
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.write(
        'POST /messages/post HTTP/1.1\r\nHost: local\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ses',
      );
      // A request after it on another connection: once answered, the runner has read the first one's headers.
      expect((await fetch(`${runner.url}/health`)).status).toBe(200);

      const began = Date.now();
      // SIGKILL after 15 s: a runner that waited for the rest of the body would die of it, not exit 0.
      const exit = await runner.kill("SIGTERM", 15_000);
      socket.destroy();
      expect(exit, runner.logs().slice(-20).join("\n")).toEqual({ code: 0, signal: null });
      expect(Date.now() - began).toBeLessThan(10_000);
      expect(alive(postmaster)).toBe(false);
    } finally {
      await runner?.kill("SIGKILL");
      if (alive(postmaster)) {
        // left behind by a runner that had to be killed
        process.kill(postmaster as number, "SIGINT");
        for (let i = 0; i < 100 && alive(postmaster); i++) await new Promise((r) => setTimeout(r, 100));
      }
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
