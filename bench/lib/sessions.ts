/** A session the load uses: its id and bearer token. */
export interface BenchSession {
  id: string;
  token: string;
}

/**
 * Hands out sessions so that no two connections ever share one (no session_busy contention) and no
 * session's history grows without bound: connection w uses sessions w, w+c, w+2c, … of its slice, each for
 * `postsPerSession` posts. Wraps around (counted in `reused`) if the pool runs out.
 */
export class SessionRotation {
  readonly #sessions: BenchSession[];
  readonly #concurrency: number;
  readonly #posts: number;
  readonly #index: number[];
  readonly #used: number[];
  reused = 0;

  constructor(sessions: BenchSession[], concurrency: number, postsPerSession: number) {
    if (sessions.length < concurrency) throw new Error(`need at least ${concurrency} sessions`);
    this.#sessions = sessions;
    this.#concurrency = concurrency;
    this.#posts = postsPerSession;
    this.#index = Array.from({ length: concurrency }, (_, w) => w);
    this.#used = Array.from({ length: concurrency }, () => 0);
  }

  next(worker: number): BenchSession {
    if ((this.#used[worker] as number) >= this.#posts) {
      this.#used[worker] = 0;
      let i = (this.#index[worker] as number) + this.#concurrency;
      if (i >= this.#sessions.length) {
        i = worker;
        this.reused++;
      }
      this.#index[worker] = i;
    }
    this.#used[worker] = (this.#used[worker] as number) + 1;
    return this.#sessions[this.#index[worker] as number] as BenchSession;
  }

  /** Sessions touched so far (a prefix of the pool, per connection). */
  get consumed(): number {
    return Math.max(...this.#index) + 1;
  }
}

/** User messages of a realistic length; none hits the responder's history-scanning rules. */
export const USER_MESSAGES = [
  "Hello there, I would like to plan a weekend trip to the mountains",
  "The weather forecast says it might rain on Saturday afternoon, unfortunately",
  "I am thinking about taking the train instead of driving this time",
  "Can you tell me a fun fact while I pack my bag?",
  "My sister might join us, she loves hiking and photography",
  "We should probably book the cabin before the end of the week",
];

export const contentFor = (seq: number): string => USER_MESSAGES[seq % USER_MESSAGES.length] as string;
