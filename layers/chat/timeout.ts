/**
 * `work`, or the error `onTimeout()` makes once `ms` have passed, whichever settles first; the timer is cleared
 * either way. race() subscribes to `work`, so its late rejection after the deadline is never unhandled.
 * `onTimeout` may also act (abort the work) before it returns the error.
 */
export function withTimeout<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
