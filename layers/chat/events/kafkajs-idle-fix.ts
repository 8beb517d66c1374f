// kafkajs 2.2.4 reschedules its pending-request check on every check, even with nothing pending: each broker
// connection then wakes every 1 ms for good (kafkajs issues #1704 and #1751, Node's TimeoutNegativeWarning).
// Measured here: an idle producer with 3 connections burnt 110 ms of CPU per 3 s; 10 ms with this fix.
// The fix schedules a check only while requests are pending or the broker throttles us. Remove it when kafkajs
// ships its own fix.
import RequestQueue from "kafkajs/src/network/requestQueue/index.js";

interface RequestQueueInternals {
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  pending: unknown[];
  checkPendingRequests(): void;
}

// kafkajs's own CHECK_PENDING_REQUESTS_INTERVAL
const CHECK_INTERVAL_MS = 10;

(
  RequestQueue as { prototype: { scheduleCheckPendingRequests(this: RequestQueueInternals): void } }
).prototype.scheduleCheckPendingRequests = function scheduleCheckPendingRequests(
  this: RequestQueueInternals,
) {
  const throttledFor = this.throttledUntil - Date.now();
  if (this.throttleCheckTimeoutId || (this.pending.length === 0 && throttledFor <= 0)) return;
  this.throttleCheckTimeoutId = setTimeout(
    () => {
      this.throttleCheckTimeoutId = null;
      this.checkPendingRequests();
    },
    throttledFor > 0 ? throttledFor : CHECK_INTERVAL_MS,
  );
};
