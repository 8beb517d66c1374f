import { AsyncLocalStorage } from "node:async_hooks";
import { format } from "node:util";

/** Lambda's LogResult (`LogType: Tail`) is the last 4 KB of the invocation's log. */
export const LOG_TAIL_BYTES = 4096;

/** The end of what one invocation wrote. Keeps as many UTF-16 units as the tail has bytes: never fewer. */
export class InvocationLog {
  private text = "";
  /** >0 while a patched console method writes: its own stream write is the same line, already kept. */
  consoleDepth = 0;

  append(chunk: string): void {
    this.text = (this.text + chunk).slice(-LOG_TAIL_BYTES);
  }

  toString(): string {
    return this.text;
  }
}

const current = new AsyncLocalStorage<InvocationLog>();
let installed = false;

type Write = (chunk: unknown, ...rest: unknown[]) => boolean;
const chunkText = (chunk: unknown) =>
  typeof chunk === "string" ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk).toString("utf8") : "";

/**
 * Once per process: stdout/stderr writes and the console methods Lambda's runtime patches also go to the log
 * of the invocation whose async context makes them, then on as before. Console methods are wrapped as well
 * because a console need not write to process.stdout (test runners swap it); Powertools Logger writes through
 * its own Console on process.stdout, which the stream patch sees.
 */
function install(): void {
  if (installed) return;
  installed = true;
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write as Write;
    (stream as { write: Write }).write = function (this: unknown, chunk, ...rest) {
      const log = current.getStore();
      if (log && log.consoleDepth === 0) log.append(chunkText(chunk));
      return write.call(this, chunk, ...rest);
    };
  }
  for (const method of ["log", "info", "warn", "error", "debug"] as const) {
    const original = console[method];
    console[method] = function (this: unknown, ...args: unknown[]) {
      const log = current.getStore();
      if (!log) return original.apply(this, args);
      log.append(`${format(...args)}\n`);
      log.consoleDepth += 1;
      try {
        return original.apply(this, args);
      } finally {
        log.consoleDepth -= 1;
      }
    };
  }
}

/** Runs `fn` with what it (and everything it starts) writes kept in `log`, still passed through. */
export function withInvocationLog<T>(log: InvocationLog, fn: () => T): T {
  install();
  return current.run(log, fn);
}
