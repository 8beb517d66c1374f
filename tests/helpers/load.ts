import { Agent, type IncomingHttpHeaders, request } from "node:http";

/**
 * A bounded, closed-loop load generator: `concurrency` workers each run `step` again and again until the
 * duration or count bound is reached. Every HTTP request is recorded (status, latency, problem code,
 * Retry-After) and a step can attach the ids the server acknowledged to its record.
 */

export interface LoadRecord {
  op: string;
  worker: number;
  /** Epoch ms (fractional) when the request was sent and when its outcome was known. */
  start: number;
  end: number;
  latencyMs: number;
  /** HTTP status; 0 when there was no HTTP answer (connection refused/reset, client timeout). */
  status: number;
  /** Network error code, or "client_timeout". */
  error?: string;
  /** `code` of a problem+json body. */
  code?: string;
  retryAfter?: string;
  /** Ids the server acknowledged in this answer (set by the step). */
  ids?: string[];
  /** Free-form details a step wants to keep (tag, session, version…). */
  meta?: Record<string, unknown>;
}

export interface HttpAnswer<T = unknown> {
  status: number;
  headers: IncomingHttpHeaders;
  /** Parsed JSON when the body is JSON, else undefined. */
  body: T;
  record: LoadRecord;
}

export interface RequestOptions {
  body?: unknown;
  token?: string;
  headers?: Record<string, string>;
  meta?: Record<string, unknown>;
}

export class HttpClient {
  readonly baseUrl: string;
  readonly timeoutMs: number;
  readonly #agent: Agent;
  readonly #sink: (r: LoadRecord) => void;

  constructor(
    baseUrl: string,
    opts: { maxSockets?: number; timeoutMs?: number; sink?: (r: LoadRecord) => void } = {},
  ) {
    this.baseUrl = baseUrl;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.#agent = new Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 64 });
    this.#sink = opts.sink ?? (() => {});
  }

  /** Sends one request (`path` under baseUrl, or an absolute URL); never throws: a failure is status 0. */
  request<T = unknown>(
    op: string,
    method: string,
    path: string,
    opts: RequestOptions = {},
    worker = -1,
  ): Promise<HttpAnswer<T>> {
    const payload = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const headers: Record<string, string | number> = { ...opts.headers };
    if (payload) {
      headers["content-type"] = "application/json";
      headers["content-length"] = payload.length;
    }
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    const started = performance.now();
    const start = performance.timeOrigin + started;
    return new Promise((resolve) => {
      let settled = false;
      const finish = (status: number, resHeaders: IncomingHttpHeaders, text: string, error?: string) => {
        if (settled) return;
        settled = true;
        const now = performance.now();
        let body: unknown;
        if (text && /json/.test(String(resHeaders["content-type"] ?? ""))) {
          try {
            body = JSON.parse(text);
          } catch {
            body = undefined;
          }
        }
        const record: LoadRecord = {
          op,
          worker,
          start,
          end: performance.timeOrigin + now,
          latencyMs: now - started,
          status,
        };
        if (error) record.error = error;
        const code = (body as { code?: unknown } | undefined)?.code;
        if (status >= 400 && typeof code === "string") record.code = code;
        const retryAfter = resHeaders["retry-after"];
        if (typeof retryAfter === "string") record.retryAfter = retryAfter;
        if (opts.meta) record.meta = { ...opts.meta };
        this.#sink(record);
        resolve({ status, headers: resHeaders, body: body as T, record });
      };
      const req = request(
        /^https?:\/\//.test(path) ? path : `${this.baseUrl}${path}`,
        { method, headers, agent: this.#agent, timeout: this.timeoutMs },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            finish(res.statusCode ?? 0, res.headers, Buffer.concat(chunks).toString("utf8")),
          );
          res.on("error", (err: NodeJS.ErrnoException) => finish(0, {}, "", err.code ?? err.message));
        },
      );
      req.on("timeout", () => {
        finish(0, {}, "", "client_timeout");
        req.destroy();
      });
      req.on("error", (err: NodeJS.ErrnoException) => finish(0, {}, "", err.code ?? err.message));
      req.end(payload);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

export interface StepContext<S> {
  worker: number;
  /** The global step number (0-based). */
  iteration: number;
  state: S;
  http: <T = unknown>(
    op: string,
    method: string,
    path: string,
    opts?: RequestOptions,
  ) => Promise<HttpAnswer<T>>;
  /** True once the bound is reached or stop() was called: a multi-request step may cut itself short. */
  stopping(): boolean;
}

export interface LoadOptions<S> {
  baseUrl: string;
  concurrency: number;
  /** No step starts after this long. */
  durationMs?: number;
  /** At most this many steps in all. */
  count?: number;
  /** Per-request client timeout (default 30 s, longer than any function timeout). */
  timeoutMs?: number;
  /** Per-worker state (e.g. its own session), built before the clock starts. */
  init?: (worker: number, client: HttpClient) => Promise<S>;
  step: (ctx: StepContext<S>) => Promise<void>;
  /** Pause between a worker's steps (default 0). */
  thinkMs?: number;
}

export interface LoadMark {
  name: string;
  at: number;
}

export interface LoadRun<S> {
  readonly records: LoadRecord[];
  readonly marks: LoadMark[];
  /** Notes a point in time (e.g. "fault", "restored") for windowed summaries. */
  mark(name: string): number;
  stop(): void;
  done: Promise<LoadResult<S>>;
}

export interface LoadResult<S> {
  records: LoadRecord[];
  marks: LoadMark[];
  states: S[];
  startedAt: number;
  endedAt: number;
  steps: number;
  /** Worker steps that threw (a bug in the step, not a server failure). */
  stepErrors: string[];
}

export async function startLoad<S>(options: LoadOptions<S>): Promise<LoadRun<S>> {
  if (options.durationMs === undefined && options.count === undefined)
    throw new Error("load needs a bound: durationMs or count");
  const records: LoadRecord[] = [];
  const marks: LoadMark[] = [];
  const client = new HttpClient(options.baseUrl, {
    maxSockets: options.concurrency,
    timeoutMs: options.timeoutMs ?? 30_000,
    sink: (r) => records.push(r),
  });
  const states: S[] = [];
  for (let w = 0; w < options.concurrency; w++)
    states.push(options.init ? await options.init(w, client) : (undefined as S));
  // init traffic is not part of the measured load
  records.length = 0;

  const startedAt = Date.now();
  const deadline =
    options.durationMs === undefined ? Number.POSITIVE_INFINITY : startedAt + options.durationMs;
  let next = 0;
  let stopped = false;
  const stepErrors: string[] = [];
  const stopping = () =>
    stopped || Date.now() >= deadline || (options.count !== undefined && next >= options.count);
  const worker = async (w: number) => {
    while (!stopping()) {
      const iteration = next++;
      try {
        await options.step({
          worker: w,
          iteration,
          state: states[w] as S,
          http: (op, method, path, opts) => client.request(op, method, path, opts, w),
          stopping,
        });
      } catch (err) {
        stepErrors.push(err instanceof Error ? (err.stack ?? err.message) : String(err));
      }
      if (options.thinkMs) await new Promise((r) => setTimeout(r, options.thinkMs));
    }
  };
  const done = Promise.all(Array.from({ length: options.concurrency }, (_, w) => worker(w))).then(() => {
    client.close();
    return { records, marks, states, startedAt, endedAt: Date.now(), steps: next, stepErrors };
  });
  return {
    records,
    marks,
    mark(name) {
      const at = Date.now();
      marks.push({ name, at });
      return at;
    },
    stop() {
      stopped = true;
    },
    done,
  };
}

export interface LoadSummary {
  requests: number;
  byStatus: Record<string, number>;
  /** 2xx answers. */
  ok: number;
  /** 5xx answers (503 included). */
  fiveXx: number;
  /** 5xx other than 503 service_unavailable. */
  serverErrors: number;
  /** No HTTP answer at all. */
  networkErrors: number;
  /** 409 session_busy. */
  sessionBusy: number;
  maxLatencyMs: number;
  p50LatencyMs: number;
  p99LatencyMs: number;
  /** Requests per second over the window. */
  throughput: number;
}

const pct = (sorted: number[], p: number) =>
  sorted.length === 0 ? 0 : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0);
const round = (n: number) => Math.round(n * 10) / 10;

/** Summary of the records sent in [from, to) (epoch ms), or of all. */
export function summarize(records: LoadRecord[], window?: { from?: number; to?: number }): LoadSummary {
  const from = window?.from ?? Number.NEGATIVE_INFINITY;
  const to = window?.to ?? Number.POSITIVE_INFINITY;
  const rs = records.filter((r) => r.start >= from && r.start < to);
  const byStatus: Record<string, number> = {};
  for (const r of rs) {
    const key =
      r.status === 0 ? `net:${r.error ?? "?"}` : r.code ? `${r.status} ${r.code}` : String(r.status);
    byStatus[key] = (byStatus[key] ?? 0) + 1;
  }
  const lat = rs.map((r) => r.latencyMs).sort((a, b) => a - b);
  let first = Number.POSITIVE_INFINITY;
  let last = 0;
  for (const r of rs) {
    if (r.start < first) first = r.start;
    if (r.end > last) last = r.end;
  }
  return {
    requests: rs.length,
    byStatus,
    ok: rs.filter((r) => r.status >= 200 && r.status < 300).length,
    fiveXx: rs.filter((r) => r.status >= 500).length,
    serverErrors: rs.filter((r) => r.status >= 500 && !(r.status === 503 && r.code === "service_unavailable"))
      .length,
    networkErrors: rs.filter((r) => r.status === 0).length,
    sessionBusy: rs.filter((r) => r.status === 409 && r.code === "session_busy").length,
    maxLatencyMs: round(lat[lat.length - 1] ?? 0),
    p50LatencyMs: round(pct(lat, 50)),
    p99LatencyMs: round(pct(lat, 99)),
    throughput: last > first ? round(rs.length / ((last - first) / 1000)) : 0,
  };
}
