/** ioredis's commandTimeout ("Command timed out") and SessionCache's bound on a batch ("… timed out after …"). */
export const isRedisTimeout = (err: unknown): boolean =>
  err instanceof Error && /\btimed out\b/.test(err.message);
