import type { Config } from "../config.ts";
import { bedrockResponder } from "./bedrock-responder.ts";
import { builtinResponder } from "./builtin-responder.ts";
import type { Responder } from "./responder.ts";

export function selectResponder(cfg: Config, onFallback?: (reason: string) => void): Responder {
  if (cfg.RESPONDER === "bedrock") {
    return bedrockResponder({
      modelId: cfg.BEDROCK_MODEL_ID,
      region: cfg.BEDROCK_REGION,
      timeoutMs: cfg.BEDROCK_TIMEOUT_MS,
      onFallback,
    });
  }
  return builtinResponder;
}
