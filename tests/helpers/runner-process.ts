import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { fileURLToPath } from "node:url";
import { freePort } from "./private-redis.ts";

const REPO = fileURLToPath(new URL("../..", import.meta.url));
const MAIN = fileURLToPath(new URL("../../local/main.ts", import.meta.url));

/**
 * The Authorization header the AWS SDK sends, which the runner's Lambda Invoke API wants (it checks only its
 * scheme: there are no credentials to check the signature with).
 */
export const SIGV4_AUTHORIZATION =
  "AWS4-HMAC-SHA256 Credential=x/20250101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0";

/** `node local/main.ts` as a child process: a server that can be SIGKILLed like a crashed Lambda host. */
export interface RunnerProcess {
  url: string;
  port: number;
  pid: number;
  child: ChildProcess;
  /** Resident set size now (bytes), from /proc; 0 once it has exited. */
  rssBytes(): number;
  /** The last lines of stdout and stderr. */
  logs(): string[];
  /** Lines that look like errors (stderr, `"level":"ERROR"`), kept whole. */
  errorLines(): string[];
  /** Lambda Invoke API (RequestResponse) through the runner; rejects on a function error. */
  invoke<T = unknown>(name: string, payload?: unknown, timeoutMs?: number): Promise<T>;
  /** Sends a signal and waits for the process to exit (SIGKILL after `graceMs` if it has not). */
  kill(signal?: NodeJS.Signals, graceMs?: number): Promise<{ code: number | null; signal: string | null }>;
  /** SIGTERM: the runner's orderly shutdown. */
  stop(): Promise<{ code: number | null; signal: string | null }>;
  exited(): boolean;
}

export interface RunnerProcessOptions {
  /** Added to a clean environment (no inherited DATABASE_URL, REDIS_URL, KAFKA_BROKERS). */
  env: Record<string, string | undefined>;
  /** Defaults to a free port; pass the old one to restart in place. */
  port?: number;
  /** How long to wait for GET /health to answer 200 (default 60 s). */
  readyTimeoutMs?: number;
  /** Lines of output kept for logs() (default 400). */
  keepLines?: number;
}

const CLEARED = [
  "DATABASE_URL",
  "DATABASE_SECRET_ARN",
  "REDIS_URL",
  "KAFKA_BROKERS",
  "MSK_CLUSTER_ARN",
  "NODE_OPTIONS",
  "VITEST",
  "VITEST_MODE",
  "VITEST_POOL_ID",
  "VITEST_WORKER_ID",
  "TEST",
  "PORT",
];

function get(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve) => {
    const req = request(url, { method: "GET", timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
      res.on("error", () => resolve(0));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve(0));
    req.end();
  });
}

function post(url: string, body: string, timeoutMs: number) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>(
    (resolve, reject) => {
      const req = request(
        url,
        {
          method: "POST",
          timeout: timeoutMs,
          agent: false,
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
            authorization: SIGV4_AUTHORIZATION,
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString("utf8"),
            }),
          );
          res.on("error", reject);
        },
      );
      req.on("timeout", () => req.destroy(new Error(`invoke timed out after ${timeoutMs} ms`)));
      req.on("error", reject);
      req.end(body);
    },
  );
}

export async function startRunnerProcess(options: RunnerProcessOptions): Promise<RunnerProcess> {
  const port = options.port ?? (await freePort());
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !CLEARED.includes(k)) env[k] = v;
  for (const [k, v] of Object.entries(options.env)) if (v !== undefined) env[k] = v;
  env.PORT = String(port);
  env.HOST = "127.0.0.1";

  const child = spawn(process.execPath, [MAIN], { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
  const keep = options.keepLines ?? 400;
  const lines: string[] = [];
  const errors: string[] = [];
  const collect = (stream: NodeJS.ReadableStream, isErr: boolean) => {
    let partial = "";
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      const parts = (partial + chunk).split("\n");
      partial = parts.pop() ?? "";
      for (const line of parts) {
        lines.push(line);
        if (lines.length > keep) lines.shift();
        if ((isErr || /"level":"ERROR"|\[local\].*(failed|error)/i.test(line)) && errors.length < 1000)
          errors.push(line);
      }
    });
  };
  collect(child.stdout as NodeJS.ReadableStream, false);
  collect(child.stderr as NodeJS.ReadableStream, true);

  let exit: { code: number | null; signal: string | null } | undefined;
  const exitedPromise = new Promise<{ code: number | null; signal: string | null }>((resolve) => {
    child.once("exit", (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });

  const url = `http://127.0.0.1:${port}`;
  const until = Date.now() + (options.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (exit) {
      throw new Error(
        `runner exited during start-up (${JSON.stringify(exit)}):\n${lines.slice(-30).join("\n")}`,
      );
    }
    if ((await get(`${url}/health`, 2000)) === 200) break;
    if (Date.now() > until) {
      child.kill("SIGKILL");
      throw new Error(`runner did not answer GET /health with 200 in time:\n${lines.slice(-30).join("\n")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  const pid = child.pid as number;
  const kill = async (signal: NodeJS.Signals = "SIGKILL", graceMs = 20_000) => {
    if (exit) return exit;
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    try {
      return await exitedPromise;
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    url,
    port,
    pid,
    child,
    rssBytes() {
      if (exit) return 0;
      try {
        const status = readFileSync(`/proc/${pid}/status`, "utf8");
        const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? 0);
        return kb * 1024;
      } catch {
        return 0;
      }
    },
    logs: () => [...lines],
    errorLines: () => [...errors],
    async invoke<T>(name: string, payload: unknown = {}, timeoutMs = 120_000): Promise<T> {
      const res = await post(
        `${url}/2015-03-31/functions/${encodeURIComponent(name)}/invocations`,
        JSON.stringify(payload),
        timeoutMs,
      );
      if (res.status !== 200 || res.headers["x-amz-function-error"]) {
        throw new Error(`invoke ${name} failed (${res.status}): ${res.body}`);
      }
      return JSON.parse(res.body) as T;
    },
    kill,
    stop: () => kill("SIGTERM"),
    exited: () => exit !== undefined,
  };
}
