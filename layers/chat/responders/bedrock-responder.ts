import type { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import { timeLeftMs } from "../request-deadline.ts";
import { withTimeout } from "../timeout.ts";
import { builtinReply } from "./builtin-responder.ts";
import type { ConversationInfo, Reply, Responder, Turn } from "./responder.ts";

export interface BedrockOptions {
  modelId: string;
  region?: string;
  timeoutMs: number;
  /** Injected in tests; otherwise created on first use. */
  client?: BedrockRuntimeClient;
  /** Told when the model could not answer and the built-in reply was used (metrics). */
  onFallback?: (reason: string) => void;
}

/**
 * Kept from the request's time left for what follows the reply (the turn's write, the cache, the publish): a model
 * answering at the deadline would leave the write no time, and the turn would fail instead of getting the
 * built-in reply. Below MIN_MODEL_MS left for it, the model is not asked at all.
 */
export const AFTER_REPLY_MS = 1000;
const MIN_MODEL_MS = 100;

const SYSTEM_PROMPT =
  "You are a concise, friendly chat assistant. Answer in at most a few sentences. Use only the conversation given.";

/**
 * Amazon Bedrock through the Converse API. Bounded by its own timeout, well under the function's, and by the
 * request's time left less AFTER_REPLY_MS, falling back to the built-in reply on any error, so a slow or failing
 * model never fails a turn. Suggestions come from the built-in rules: they must be instant and always three.
 */
export function bedrockResponder(opts: BedrockOptions): Responder {
  let client = opts.client;
  const getClient = async () => {
    if (!client) {
      const { BedrockRuntimeClient } = await import("@aws-sdk/client-bedrock-runtime");
      client = new BedrockRuntimeClient(
        opts.region ? { region: opts.region, maxAttempts: 1 } : { maxAttempts: 1 },
      );
    }
    return client;
  };
  return {
    name: "bedrock",
    costly: true,
    async respond(history: Turn[], info?: ConversationInfo): Promise<Reply> {
      const fallback = builtinReply(history, info);
      const forModel = (timeLeftMs() ?? Number.POSITIVE_INFINITY) - AFTER_REPLY_MS;
      if (forModel < MIN_MODEL_MS) {
        opts.onFallback?.("deadline");
        return fallback;
      }
      const budget = Math.min(opts.timeoutMs, forModel);
      try {
        const { ConverseCommand } = await import("@aws-sdk/client-bedrock-runtime");
        const c = await getClient();
        const abort = new AbortController();
        const out = await withDeadline(
          c.send(
            new ConverseCommand({
              modelId: opts.modelId,
              system: [{ text: SYSTEM_PROMPT }, ...earlierNote(info)],
              messages: toConverseMessages(history),
              inferenceConfig: { maxTokens: 512, temperature: 0.3 },
            }),
            { abortSignal: abort.signal },
          ),
          budget,
          () => abort.abort(),
        );
        const text = out.output?.message?.content
          ?.map((b) => ("text" in b ? b.text : ""))
          .join("")
          .trim();
        if (!text) throw new Error("empty model output");
        return { content: text, suggestions: fallback.suggestions };
      } catch (err) {
        opts.onFallback?.(err instanceof Error ? err.name : "unknown");
        return fallback;
      }
    },
  };
}

/** Told that older messages are left out, a model does not take the oldest it is given for the first. */
const earlierNote = (info: ConversationInfo | undefined) =>
  info?.earlier
    ? [
        {
          text: `Only the newest messages are given: ${info.earlier} earlier messages of this conversation are not.`,
        },
      ]
    : [];

/** Our own deadline: it holds even where a transport ignores the abort signal. */
function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  return withTimeout(work, ms, () => {
    onTimeout();
    return Object.assign(new Error(`model did not answer within ${ms} ms`), { name: "TimeoutError" });
  });
}

/** Converse needs alternating roles starting with a user turn: merge neighbours, drop a leading bot turn. */
export function toConverseMessages(
  history: Turn[],
): { role: "user" | "assistant"; content: { text: string }[] }[] {
  const out: { role: "user" | "assistant"; content: { text: string }[] }[] = [];
  for (const turn of history) {
    const last = out[out.length - 1];
    if (last && last.role === turn.role) last.content.push({ text: turn.content });
    else if (out.length > 0 || turn.role === "user")
      out.push({ role: turn.role, content: [{ text: turn.content }] });
  }
  return out;
}
