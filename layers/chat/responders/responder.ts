import type { Role } from "../chat/types.ts";

/** What a responder sees: recent non-deleted messages in their current (edited) form, oldest first. */
export interface Turn {
  role: Role;
  content: string;
}

export interface Reply {
  content: string;
  /** Three suggested next user messages. */
  suggestions: string[];
}

/** What a responder is told of the conversation besides the turns it sees. */
export interface ConversationInfo {
  /**
   * Live messages of the conversation older than the turns given (left out by the context's bounds): 0 when the
   * turns are the whole conversation. Without it a reply about "the first message" or "how many" would state as
   * fact what only holds for the newest turns.
   */
  earlier: number;
}

export interface Responder {
  readonly name: string;
  /**
   * Each answer costs money (a model call): an Idempotency-Key is then claimed before answering, so a
   * duplicate request waits and replays instead of paying for a second answer.
   */
  readonly costly?: boolean;
  /** `history` ends with the user message being answered. */
  respond(history: Turn[], info?: ConversationInfo): Promise<Reply>;
}

/** Keeps the newest turns that fit both bounds, oldest first. */
export function boundContext(history: Turn[], maxMessages: number, maxChars: number): Turn[] {
  const kept: Turn[] = [];
  let chars = 0;
  for (let i = history.length - 1; i >= 0 && kept.length < maxMessages; i--) {
    const turn = history[i] as Turn;
    if (chars + turn.content.length > maxChars && kept.length > 0) break;
    chars += turn.content.length;
    kept.push(turn);
  }
  return kept.reverse();
}
