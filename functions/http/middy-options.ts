/**
 * middy's options for every function: no early timeout. By default middy answers 5 ms before the function's timeout
 * (a TimeoutError) and leaves the handler running; on Lambda that is an ordinary return, so the sandbox is frozen
 * with the handler's work in flight (a transaction open, holding a session's row) and goes on with it, maybe to a
 * commit, whenever it next runs. Lambda's own timeout ends the sandbox: its connections close and Postgres rolls
 * the transaction back, as the 5xx says (and as the Idempotency-Key lock's bound assumes).
 */
export const MIDDY_OPTIONS = { timeoutEarlyInMillis: 0 } as const;
