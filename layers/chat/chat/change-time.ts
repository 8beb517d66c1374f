/**
 * The time a change to a session is stamped with (the session's `updated_at`, a message's `created_at`,
 * `edited_at` or `deleted_at`, the events' `time`): this sandbox's clock, but never at or before the session's
 * current `updated_at`. Each Lambda sandbox has its own clock, some behind others (and NTP steps one back now and
 * then); taken as is, a sandbox behind the one that made the previous change would stamp a message before the
 * one it follows in seq, an edit before the message's creation, and move `updated_at` back (a client polling for "newer"
 * would miss the change). The change statement applies only at the generation `previous` was read at, so the
 * floor is the stamp the session holds when it commits.
 */
export function changeTime(previous: string, now: number = Date.now()): string {
  const floor = Date.parse(previous) + 1;
  // a stamp that is no time (none the API writes) sets no floor
  return new Date(Number.isNaN(floor) ? now : Math.max(floor, now)).toISOString();
}
