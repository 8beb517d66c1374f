import { type ChildProcess, fork } from "node:child_process";
import { BenchmarkCrash } from "./closed-loop.ts";
import { quietKnownWarnings } from "./warnings.ts";

/**
 * Bench workers are child processes (one process = one "Lambda sandbox" worth of singletons: config, pool,
 * Redis client), driven by request/response messages over the IPC channel.
 */
interface Request {
  id: number;
  cmd: string;
  args: unknown;
}
interface Response {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export interface Worker {
  name: string;
  pid: number;
  call<T = unknown>(cmd: string, args?: unknown, timeoutMs?: number): Promise<T>;
  /** Asks the worker to clean up and exit; kills it (by pid) if it does not within the bound. */
  close(): Promise<void>;
}

export interface WorkerOptions {
  env: Record<string, string | undefined>;
  execArgv?: string[];
  /** Forward the worker's stderr lines (prefixed); default true. */
  echo?: boolean;
}

export async function startWorker(name: string, script: string, opts: WorkerOptions): Promise<Worker> {
  const child: ChildProcess = fork(script, [], {
    env: opts.env as NodeJS.ProcessEnv,
    execArgv: opts.execArgv ?? [],
    stdio: ["ignore", "pipe", "pipe", "ipc"],
  });
  const tail: string[] = [];
  const onLine = (stream: string) => (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (!line.trim()) continue;
      tail.push(line);
      if (tail.length > 30) tail.shift();
      if (opts.echo !== false) process.stderr.write(`  [${name}${stream}] ${line}\n`);
    }
  };
  child.stdout?.on("data", onLine(""));
  child.stderr?.on("data", onLine("!"));
  let nextId = 1;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let exited: string | undefined;
  child.on("message", (m: Response) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.ok) p.resolve(m.result);
    else p.reject(new BenchmarkCrash(`${name}: ${m.error}`));
  });
  const exitedPromise = new Promise<void>((resolve) => {
    child.on("exit", (code, signal) => {
      exited = `exited (code ${code}, signal ${signal})`;
      for (const p of pending.values())
        p.reject(new BenchmarkCrash(`${name} ${exited}; last output:\n${tail.join("\n")}`));
      pending.clear();
      resolve();
    });
  });
  const call = <T>(cmd: string, args?: unknown, timeoutMs = 600_000): Promise<T> => {
    if (exited) return Promise.reject(new BenchmarkCrash(`${name} ${exited}`));
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new BenchmarkCrash(`${name}: ${cmd} took longer than ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      child.send({ id, cmd, args } satisfies Request);
    });
  };
  await call("ready", undefined, 60_000);
  return {
    name,
    pid: child.pid ?? -1,
    call,
    async close() {
      if (exited) return;
      await call("exit", undefined, 15_000).catch(() => {});
      const timer = setTimeout(() => {
        if (!exited && child.pid) process.kill(child.pid, "SIGKILL");
      }, 5_000);
      await exitedPromise;
      clearTimeout(timer);
    },
  };
}

export type Handlers = Record<string, (args: never) => Promise<unknown> | unknown>;

/** The worker side: answers requests with the handlers; `exit` runs `cleanup` then ends the process. */
export function serveWorker(handlers: Handlers, cleanup: () => Promise<void> = async () => {}): void {
  quietKnownWarnings();
  const send = (r: Response) => process.send?.(r);
  process.on("disconnect", () => {
    // the orchestrator is gone: never outlive it
    void cleanup().finally(() => process.exit(0));
  });
  process.on("message", async (m: Request) => {
    if (m.cmd === "ready") return send({ id: m.id, ok: true });
    if (m.cmd === "exit") {
      await cleanup().catch(() => {});
      send({ id: m.id, ok: true });
      setTimeout(() => process.exit(0), 20);
      return;
    }
    const h = handlers[m.cmd];
    if (!h) return send({ id: m.id, ok: false, error: `unknown command ${m.cmd}` });
    try {
      send({ id: m.id, ok: true, result: await h(m.args as never) });
    } catch (err) {
      send({ id: m.id, ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    }
  });
}
