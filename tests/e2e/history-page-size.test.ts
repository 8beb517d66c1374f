import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PAGE_MAX_BYTES } from "../../layers/chat/chat/page-size.ts";
import type { Message } from "../../layers/chat/chat/types.ts";
import { type RunnerFixture, startRunnerFixture } from "../helpers/runner-fixture.ts";

/**
 * A page of history must fit in what Lambda can return (6 MB of response JSON, which the local runner
 * enforces as Lambda does). The costliest text: control characters, 6 bytes each in the page's JSON
 * (`\u0001`) and 7 in Lambda's response, where the page is a JSON string again. 60 messages of 16,000 of them
 * make a 5.8 MB page, 6.7 MB in Lambda's response: a page of 200 must stop earlier and say where to go on.
 * The cache's byte bound is raised above that history (its default would keep it in Postgres) so pages are cut
 * from the cache too.
 */
const CHARS = 16_000;
const POSTS = 60;

interface Page {
  messages: Message[];
  next_after_seq: number | null;
}

let fx: RunnerFixture;
let sessionId: string;
let token: string;

beforeAll(async () => {
  fx = await startRunnerFixture({
    env: {
      MAX_CONTENT_CHARS: String(CHARS),
      MAX_BODY_BYTES: "262144",
      CACHE_HISTORY_MAX_BYTES: String(16 * 1024 * 1024),
      // the ≈ 11 MB entry is read whole under the fixture's 1 s Redis command timeout (the product's 50 ms is a miss)
    },
  });
  const created = await fx.call<{ session: { session_id: string }; token: string }>(
    "POST",
    "/sessions/create",
    {
      json: {},
    },
  );
  sessionId = created.body.session.session_id;
  token = created.body.token;
  for (let i = 0; i < POSTS; i++) {
    const content = `${i} ${"\u0001".repeat(CHARS - 4)}`;
    const res = await fx.call("POST", "/messages/post", { token, json: { session_id: sessionId, content } });
    expect(res.status, res.text).toBe(201);
  }
}, 120_000);
afterAll(async () => {
  await fx?.close();
});

/** Every page from the start with limit=200, following next_after_seq. */
async function readPages(): Promise<{ pages: Page[]; bytes: number[]; cache: (string | null)[] }> {
  const pages: Page[] = [];
  const bytes: number[] = [];
  const cache: (string | null)[] = [];
  let after = 0;
  for (let i = 0; i < 10; i++) {
    const res = await fx.call<Page>("GET", `/sessions/${sessionId}/messages?after_seq=${after}&limit=200`, {
      token,
    });
    expect(res.status, res.text.slice(0, 200)).toBe(200);
    pages.push(res.body);
    bytes.push(Buffer.byteLength(res.text));
    cache.push(res.headers.get("x-cache"));
    if (res.body.next_after_seq === null) return { pages, bytes, cache };
    after = res.body.next_after_seq;
  }
  throw new Error("more than 10 pages");
}

function expectWholeHistory(pages: Page[], bytes: number[]) {
  // more than one page, each within the bound, together the whole history in order
  expect(pages.length).toBeGreaterThan(1);
  for (const b of bytes) expect(b).toBeLessThanOrEqual(PAGE_MAX_BYTES + 64);
  const all = pages.flatMap((p) => p.messages);
  expect(all.map((m) => m.seq)).toEqual(Array.from({ length: 1 + 2 * POSTS }, (_, i) => i + 1));
  const posted = all.filter((m) => m.role === "user").map((m) => m.content);
  expect(posted).toEqual(Array.from({ length: POSTS }, (_, i) => `${i} ${"\u0001".repeat(CHARS - 4)}`));
  for (const p of pages.slice(0, -1)) expect(p.next_after_seq).toBe(p.messages.at(-1)?.seq);
}

describe("history pages of long messages", () => {
  it("stop at PAGE_MAX_BYTES from the cache, and the next pages hold the rest", async () => {
    const { pages, bytes, cache } = await readPages();
    expect(cache.every((c) => c === "hit")).toBe(true);
    expectWholeHistory(pages, bytes);
  });

  it("cut the same pages from Postgres", async () => {
    const fromCache = await readPages();
    await fx.reconfigure({ REDIS_URL: "" });
    const fromPostgres = await readPages();
    expect(fromPostgres.cache.every((c) => c === "miss")).toBe(true);
    expectWholeHistory(fromPostgres.pages, fromPostgres.bytes);
    expect(fromPostgres.pages).toEqual(fromCache.pages);
  });
});
