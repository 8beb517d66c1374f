import { BedrockRuntimeClient, ConverseCommand } from "@aws-sdk/client-bedrock-runtime";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, describe, expect, it } from "vitest";
import { bedrockResponder, toConverseMessages } from "../../layers/chat/responders/bedrock-responder.ts";
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
