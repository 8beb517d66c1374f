import fc from "fast-check";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { poolTypes, timestamptzToIso } from "../../layers/chat/db/timestamps.ts";
import { ADMIN_URL } from "../helpers/global-database.ts";

// The product pool's timestamptz parser against what the API wrote before it: Date#toISOString of the driver's Date.
let pool: pg.Pool;
beforeAll(() => {
  pool = new pg.Pool({ connectionString: ADMIN_URL, max: 2, types: poolTypes });
});
afterAll(() => pool.end());

// Years 1–9999 (the API's range) with microseconds, which Postgres keeps and the API truncates to milliseconds.
const instantUs = fc.bigInt({ min: -62_135_596_800_000_000n, max: 253_402_300_799_999_999n });
/** The instant as text with all six fraction digits (what Postgres stores), and its API form (milliseconds). */
const forms = (us: bigint) => {
  const ms = us / 1000n - (us % 1000n < 0n ? 1n : 0n); // floor: toISOString truncates towards the past
  const iso = new Date(Number(ms)).toISOString();
  const extraUs = String(us - ms * 1000n).padStart(3, "0");
  return { micro: `${iso.slice(0, 23)}${extraUs}Z`, iso };
};

describe("timestamptz from the product pool", () => {
  it("is the ISO string Date#toISOString gives, in any session TimeZone", async () => {
    for (const tz of ["UTC", "Europe/Paris", "America/St_Johns", "Asia/Kathmandu"]) {
      const client = await pool.connect();
      try {
        await client.query(`SET TimeZone = '${tz}'`);
        await fc.assert(
          fc.asyncProperty(fc.array(instantUs, { minLength: 1, maxLength: 50 }), async (values) => {
            const res = await client.query("SELECT unnest($1::timestamptz[]) AS at", [
              values.map((v) => forms(v).micro),
            ]);
            expect(res.rows.map((r) => r.at)).toEqual(values.map((v) => forms(v).iso));
          }),
          { numRuns: 25 },
        );
      } finally {
        client.release();
      }
    }
  });

  it("reads back exactly the string the API stored", async () => {
    const written = ["2026-11-26T10:47:53.000Z", "2026-11-26T10:47:53.100Z", "0001-01-01T00:00:00.001Z"];
    const res = await pool.query("SELECT unnest($1::timestamptz[]) AS at", [written]);
    expect(res.rows.map((r) => r.at)).toEqual(written);
  });
});

describe("timestamptzToIso", () => {
  it("keeps what no ISO string can hold as Postgres wrote it", () => {
    expect(timestamptzToIso("infinity")).toBe("infinity");
    expect(timestamptzToIso("-infinity")).toBe("-infinity");
  });

  it("converts other offsets and BC dates through the driver's parser", () => {
    expect(timestamptzToIso("2026-01-02 04:04:05.25+01")).toBe("2026-01-02T03:04:05.250Z");
    expect(timestamptzToIso("2026-01-02 08:49:05+05:45")).toBe("2026-01-02T03:04:05.000Z");
    expect(timestamptzToIso("0044-03-15 12:00:00+00 BC")).toBe(
      new Date(Date.UTC(-43, 2, 15, 12)).toISOString(),
    );
  });
});
