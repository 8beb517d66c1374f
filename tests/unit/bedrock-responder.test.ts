import { BedrockRuntimeClient, ConverseCommand } from "@aws-sdk/client-bedrock-runtime";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ANSWER_MARGIN_MS, withRequestDeadline } from "../../layers/chat/request-deadline.ts";
import {
  AFTER_REPLY_MS,
  bedrockResponder,
  toConverseMessages,
} from "../../layers/chat/responders/bedrock-responder.ts";
import { builtinReply } from "../../layers/chat/responders/builtin-responder.ts";

const bedrock = mockClient(BedrockRuntimeClient);
afterEach(() => bedrock.reset());

const history = [
  { role: "assistant" as const, content: "welcome" },
  { role: "user" as const, content: "hello" },
];

describe("Bedrock responder", () => {
  it("sends the model id, a system prompt and the turns (starting with a user turn) to Converse", async () => {
    bedrock
      .on(ConverseCommand)
      .resolves({ output: { message: { role: "assistant", content: [{ text: "Hi from the model" }] } } });
    const responder = bedrockResponder({
      modelId: "test-model",
      timeoutMs: 1000,
      client: new BedrockRuntimeClient({ region: "us-east-1" }),
    });
    const reply = await responder.respond(history);
    expect(reply.content).toBe("Hi from the model");
    expect(reply.suggestions).toHaveLength(3);
    const input = bedrock.commandCalls(ConverseCommand)[0]?.args[0].input;
    expect(input?.modelId).toBe("test-model");
    expect(input?.system?.[0]).toHaveProperty("text");
    expect(input?.messages).toEqual([{ role: "user", content: [{ text: "hello" }] }]);
  });

  it("tells the model when older messages of the conversation are left out", async () => {
    bedrock
      .on(ConverseCommand)
      .resolves({ output: { message: { role: "assistant", content: [{ text: "ok" }] } } });
    const client = new BedrockRuntimeClient({ region: "us-east-1" });
    const responder = bedrockResponder({ modelId: "m", timeoutMs: 1000, client });
    await responder.respond(history);
    await responder.respond(history, { earlier: 7 });
    const [whole, part] = bedrock.commandCalls(ConverseCommand).map((c) => c.args[0].input.system);
    expect(whole).toHaveLength(1);
    expect(part?.[1]).toEqual({
      text: "Only the newest messages are given: 7 earlier messages of this conversation are not.",
    });
  });

  it("falls back to the built-in reply on an error, and says why", async () => {
    bedrock
      .on(ConverseCommand)
      .rejects(Object.assign(new Error("throttled"), { name: "ThrottlingException" }));
    const reasons: string[] = [];
    const responder = bedrockResponder({
      modelId: "m",
      timeoutMs: 1000,
      client: new BedrockRuntimeClient({ region: "us-east-1" }),
      onFallback: (r) => reasons.push(r),
    });
    expect(await responder.respond(history)).toEqual(builtinReply(history));
    expect(reasons).toEqual(["ThrottlingException"]);
  });

  it("gives up at its timeout and falls back, well before a slow model answers", async () => {
    bedrock.on(ConverseCommand).callsFake(
      (_input, getClient) =>
        new Promise((resolve) => {
          // aws-sdk-client-mock does not see the abort signal; a slow model resolves late
          setTimeout(
            () => resolve({ output: { message: { role: "assistant", content: [{ text: "too late" }] } } }),
            2000,
          );
          void getClient;
        }),
    );
    const responder = bedrockResponder({
      modelId: "m",
      timeoutMs: 100,
      client: new BedrockRuntimeClient({ region: "us-east-1" }),
    });
    const t0 = performance.now();
    const reply = await Promise.race([
      responder.respond(history),
      new Promise((r) => setTimeout(() => r("outer-timeout"), 1500)),
    ]);
    expect(reply).toEqual(builtinReply(history));
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("merges neighbouring turns of the same role and drops a leading bot turn", () => {
    expect(
      toConverseMessages([
        { role: "assistant", content: "a" },
        { role: "user", content: "b" },
        { role: "user", content: "c" },
        { role: "assistant", content: "d" },
      ]),
    ).toEqual([
      { role: "user", content: [{ text: "b" }, { text: "c" }] },
      { role: "assistant", content: [{ text: "d" }] },
    ]);
  });
});

describe("Bedrock responder: model output, deadline and client", () => {
  const answer = (content: { text: string }[]) => ({
    output: { message: { role: "assistant" as const, content } },
  });
  const responderWith = (onFallback?: (r: string) => void, timeoutMs = 1000) =>
    bedrockResponder({
      modelId: "m",
      timeoutMs,
      client: new BedrockRuntimeClient({ region: "us-east-1" }),
      onFallback,
    });

  it("falls back when the model answers nothing or only white space, and says so", async () => {
    for (const content of [[], [{ text: "" }], [{ text: " \n " }]]) {
      bedrock.reset();
      bedrock.on(ConverseCommand).resolves(answer(content));
      const reasons: string[] = [];
      expect(await responderWith((r) => reasons.push(r)).respond(history)).toEqual(builtinReply(history));
      expect(reasons).toEqual(["Error"]);
    }
  });

  it("joins every text block of the answer, trimmed", async () => {
    bedrock.on(ConverseCommand).resolves(answer([{ text: " Hello, " }, { text: "there. " }]));
    expect((await responderWith().respond(history)).content).toBe("Hello, there.");
  });

  it("bounds the answer's length in the request", async () => {
    bedrock.on(ConverseCommand).resolves(answer([{ text: "ok" }]));
    await responderWith().respond(history);
    // about 4 characters a token: a reply must fit a message (8,000 characters by default)
    const maxTokens = bedrock.commandCalls(ConverseCommand)[0]?.args[0].input.inferenceConfig?.maxTokens;
    expect(maxTokens).toBeGreaterThan(0);
    expect(maxTokens).toBeLessThanOrEqual(2000);
  });

  /**
   * A model that never answers, through a hand-made client: aws-sdk-client-mock does not pass the send options (the
   * abort signal) on.
   */
  function silentModel(timeoutMs: number) {
    const seen: { signal?: AbortSignal; reasons: string[] } = { reasons: [] };
    const client = {
      send: (_cmd: unknown, opts: { abortSignal?: AbortSignal }) => {
        seen.signal = opts.abortSignal;
        return new Promise(() => {});
      },
    } as unknown as BedrockRuntimeClient;
    const responder = bedrockResponder({
      modelId: "m",
      timeoutMs,
      client,
      onFallback: (r) => seen.reasons.push(r),
    });
    return { responder, seen };
  }

  it("aborts the model call at its deadline and reports a TimeoutError", async () => {
    const { responder, seen } = silentModel(50);
    expect(await responder.respond(history)).toEqual(builtinReply(history));
    expect(seen.signal?.aborted).toBe(true);
    expect(seen.reasons).toEqual(["TimeoutError"]);
  });

  it("waits for the model only until the request's time left less what the turn's write needs", async () => {
    const { responder, seen } = silentModel(60_000);
    // 300 ms for the model: without the request's bound it would wait its own 60 s (the test's timeout fails first)
    const remaining = ANSWER_MARGIN_MS + AFTER_REPLY_MS + 300;
    expect(await withRequestDeadline(remaining, () => responder.respond(history))).toEqual(
      builtinReply(history),
    );
    expect(seen.signal?.aborted).toBe(true);
    expect(seen.reasons).toEqual(["TimeoutError"]);
  });

  it("does not ask the model when the request has no time left for it, and says so", async () => {
    bedrock.on(ConverseCommand).resolves(answer([{ text: "too late" }]));
    const reasons: string[] = [];
    const responder = bedrockResponder({
      modelId: "m",
      timeoutMs: 4000,
      client: new BedrockRuntimeClient({ region: "us-east-1" }),
      onFallback: (r) => reasons.push(r),
    });
    const remaining = ANSWER_MARGIN_MS + AFTER_REPLY_MS + 50;
    expect(await withRequestDeadline(remaining, () => responder.respond(history))).toEqual(
      builtinReply(history),
    );
    expect(bedrock.commandCalls(ConverseCommand)).toHaveLength(0);
    expect(reasons).toEqual(["deadline"]);
    // outside a request (no deadline) the model is asked
    expect((await responder.respond(history)).content).toBe("too late");
  });

  it("keeps a second of the request's time for the turn's write, and asks the model with 100 ms left for it", async () => {
    bedrock.on(ConverseCommand).resolves(answer([{ text: "in time" }]));
    const reasons: string[] = [];
    const responder = responderWith((r) => reasons.push(r), 4000);
    // the clock held, so that the time left is exactly what is given (ms after the answer's margin)
    const asked = async (afterMargin: number) => {
      bedrock.resetHistory();
      const now = Date.now();
      const clock = vi.spyOn(Date, "now").mockReturnValue(now);
      try {
        await withRequestDeadline(ANSWER_MARGIN_MS + afterMargin, () => responder.respond(history));
      } finally {
        clock.mockRestore();
      }
      return bedrock.commandCalls(ConverseCommand).length === 1;
    };
    expect(await asked(1000 + 99)).toBe(false);
    expect(reasons).toEqual(["deadline"]);
    expect(await asked(1000 + 100)).toBe(true);
    expect(reasons).toEqual(["deadline"]);
  });

  it("waits for the model up to timeoutMs, not longer", async () => {
    // answers at 100 ms and at 600 ms against a 300 ms deadline: the first is used, the second is not
    const answerAfter = (ms: number) => (_input: unknown) =>
      new Promise((resolve) => setTimeout(() => resolve(answer([{ text: `after ${ms}` }])), ms));
    bedrock.on(ConverseCommand).callsFakeOnce(answerAfter(100)).callsFakeOnce(answerAfter(600));
    const responder = responderWith(undefined, 300);
    expect((await responder.respond(history)).content).toBe("after 100");
    expect(await responder.respond(history)).toEqual(builtinReply(history));
  });

  it("creates its own client, in the given region, with no SDK retries", async () => {
    bedrock.on(ConverseCommand).resolves(answer([{ text: "ok" }]));
    await bedrockResponder({ modelId: "m", region: "eu-west-3", timeoutMs: 1000 }).respond(history);
    // the client the mock was called on: a retry would run past the deadline's budget and bill again
    const client = bedrock.send.getCall(0).thisValue as BedrockRuntimeClient;
    expect(await client.config.region()).toBe("eu-west-3");
    expect(await client.config.maxAttempts()).toBe(1);
  });
});
