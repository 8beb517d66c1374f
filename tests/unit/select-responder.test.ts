import { BedrockRuntimeClient, ConverseCommand } from "@aws-sdk/client-bedrock-runtime";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../layers/chat/config.ts";
import { builtinReply } from "../../layers/chat/responders/builtin-responder.ts";
import { selectResponder } from "../../layers/chat/responders/select-responder.ts";

const bedrock = mockClient(BedrockRuntimeClient);
afterEach(() => bedrock.reset());

const history = [{ role: "user" as const, content: "hello" }];
const bedrockEnv = {
  RESPONDER: "bedrock",
  BEDROCK_MODEL_ID: "my-model",
  BEDROCK_REGION: "eu-central-1",
  BEDROCK_TIMEOUT_MS: "300",
};

describe("selectResponder", () => {
  it("is the built-in responder by default, and costs nothing", () => {
    const responder = selectResponder(parseConfig({}));
    expect(responder.name).toBe("builtin");
    expect(responder.costly).toBeFalsy();
  });

  it("is Bedrock when configured, calling the configured model in the configured region", async () => {
    bedrock
      .on(ConverseCommand)
      .resolves({ output: { message: { role: "assistant", content: [{ text: "hi" }] } } });
    const responder = selectResponder(parseConfig(bedrockEnv));
    expect(responder).toMatchObject({ name: "bedrock", costly: true });
    expect((await responder.respond(history)).content).toBe("hi");
    expect(bedrock.commandCalls(ConverseCommand)[0]?.args[0].input.modelId).toBe("my-model");
    const client = bedrock.send.getCall(0).thisValue as BedrockRuntimeClient;
    expect(await client.config.region()).toBe("eu-central-1");
  });

  it("passes on BEDROCK_TIMEOUT_MS and the fallback callback", async () => {
    // the model answers at 1,000 ms, after the 300 ms configured (the default would wait 4,000)
    bedrock
      .on(ConverseCommand)
      .callsFake(
        () =>
          new Promise((resolve) =>
            setTimeout(
              () => resolve({ output: { message: { role: "assistant", content: [{ text: "late" }] } } }),
              1000,
            ),
          ),
      );
    const reasons: string[] = [];
    const responder = selectResponder(parseConfig(bedrockEnv), (r) => reasons.push(r));
    expect(await responder.respond(history)).toEqual(builtinReply(history));
    expect(reasons).toEqual(["TimeoutError"]);
  });
});
