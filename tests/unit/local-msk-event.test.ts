import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { toMskEvent } from "../../local/msk-event.ts";

describe("toMskEvent", () => {
  beforeAll(() => vi.stubEnv("AWS_REGION", "us-east-1"));
  afterAll(() => vi.unstubAllEnvs());

  it("shapes one partition's batch like Lambda's MSK event", () => {
    const event = toMskEvent({
      topic: "chat-messages",
      partition: 2,
      bootstrapServers: ["127.0.0.1:9092", "127.0.0.1:9093"],
      messages: [
        {
          key: Buffer.from("session-1"),
          value: Buffer.from('{"type":"message.posted"}'),
          offset: "41",
          timestamp: "1795671737859",
          headers: {
            ce_type: Buffer.from("ab"),
            multi: ["x", Buffer.from([1])],
            gone: undefined,
            empty: null,
            utf8: "ë",
          },
        },
        { key: null, value: null, offset: "42", timestamp: "1795671737860", headers: {} },
      ],
    });
    expect(event).toEqual({
      eventSource: "aws:kafka",
      eventSourceArn: expect.stringMatching(/^arn:aws:kafka:us-east-1:000000000000:cluster\//),
      bootstrapServers: "127.0.0.1:9092,127.0.0.1:9093",
      records: {
        "chat-messages-2": [
          {
            topic: "chat-messages",
            partition: 2,
            offset: 41,
            timestamp: 1795671737859,
            timestampType: "CREATE_TIME",
            key: Buffer.from("session-1").toString("base64"),
            value: Buffer.from('{"type":"message.posted"}').toString("base64"),
            // bytes as Java's signed bytes ("ë" is 0xc3 0xab), a header with no value as an empty list
            headers: [
              { ce_type: [97, 98] },
              { multi: [120] },
              { multi: [1] },
              { empty: [] },
              { utf8: [-61, -85] },
            ],
          },
          {
            topic: "chat-messages",
            partition: 2,
            offset: 42,
            timestamp: 1795671737860,
            timestampType: "CREATE_TIME",
            headers: [],
          },
        ],
      },
    });
  });

  it("sends header bytes either side of 0x7f/0x80 as Java's signed bytes: 127, -128, -1", () => {
    const event = toMskEvent({
      topic: "t",
      partition: 0,
      bootstrapServers: [],
      messages: [
        {
          key: null,
          value: null,
          offset: "0",
          timestamp: "0",
          headers: { raw: Buffer.from([0x7f, 0x80, 0xff]) },
        },
      ],
    });
    expect(event.records["t-0"]?.[0]?.headers).toEqual([{ raw: [127, -128, -1] }]);
  });
});
