export type Role = "user" | "assistant";

/** A message as clients see it. Times are RFC 3339 UTC strings. */
export interface Message {
  message_id: string;
  session_id: string;
  seq: number;
  role: Role;
  content: string;
  version: number;
  created_at: string;
  edited_at: string | null;
  reply_to: string | null;
}

export interface Session {
  session_id: string;
  user_id: string | null;
  metadata: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  last_seq: number;
  message_count: number;
}

/** What the cache and the auth check need of a session; never the token itself. */
export interface SessionRecord extends Session {
  token_hash: string;
  generation: number;
  suggestions: string[];
}

export interface HistoryPage {
  messages: Message[];
  /** Cursor for the next page, or null when this page reached the end. */
  next_after_seq: number | null;
}
