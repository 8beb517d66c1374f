import { expect, it } from "vitest";
import { functions } from "../../functions/manifest.ts";
import { parseConfig } from "../../layers/chat/config.ts";
import { queryTimeoutMs } from "../../layers/chat/db/pool.ts";

/**
 * A request that waits on Postgres must get the pool's own failure (a connection not made in time, a query on a
 * connection gone silent: 503 with Retry-After) before Lambda's timeout ends it, which API Gateway turns into a 500
 * of its own that says nothing a client can act on. So each routed function that uses Postgres outlasts one connect
 * and one query bound at the defaults, with a second left for the rest of its work. `health` bounds its own checks
 * to a second each (functions/health.ts), whatever the pool's.
 */
it("every routed Postgres function's timeout outlasts a connect and a query at the pool's bounds", () => {
  const cfg = parseConfig({});
  const needMs = cfg.DB_CONNECT_TIMEOUT_MS + queryTimeoutMs(cfg) + 1000;
  const short = functions
    .filter((f) => f.route && f.uses?.includes("postgres") && f.name !== "health")
    .filter((f) => f.timeoutSeconds * 1000 < needMs)
    .map((f) => `${f.name}: ${f.timeoutSeconds} s`);
  expect(short, `each needs at least ${needMs} ms`).toEqual([]);
});
