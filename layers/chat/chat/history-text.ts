import { jsonTextBound, pageLength, utf8Bytes } from "./page-size.ts";
import type { Message } from "./types.ts";

/**
 * The history cache entry's text: a JSON array with one message per line ("[\n{…},\n{…}\n]"). It is
 * plain JSON (JSON.parse reads it, as older readers did), and since JSON.stringify never writes a raw
 * line break, ",\n" can only be the separator: a page is cut out of the text without parsing it, and the
 * response body is built from the cut lines without serializing them again.
 */
export function historyText(history: readonly Message[]): string {
  return `[\n${historyLines(history)}\n]`;
}

/** The lines of `messages` as they sit between "[\n" and "\n]" (what an append adds). */
export const historyLines = (messages: readonly Message[]): string =>
  messages.map((m) => JSON.stringify(m)).join(",\n");

export const parseHistoryText = (text: string): Message[] => JSON.parse(text) as Message[];

/** The last `n` messages of a line-form text, parsing only their lines (a post's responder needs no more). */
export function lastMessagesFromText(text: string, n: number): Message[] {
  if (n <= 0 || text === "[\n\n]") return [];
  let start = text.length - 2; // before "\n]"
  for (let kept = 0; kept < n; kept++) {
    const sep = text.lastIndexOf(",\n", start - 1);
    if (sep < 0) return parseHistoryText(text);
    start = sep;
  }
  return JSON.parse(`[${text.slice(start + 2, -2)}]`) as Message[];
}

/** Whether `text` is in the one-message-per-line form (an entry written by an older version is not). */
export const isLineForm = (text: string): boolean => text.startsWith("[\n") && text.endsWith("\n]");

/**
 * The JSON body of pageOf(parseHistoryText(text), afterSeq, limit), from a line-form text, without parsing
 * the messages: each line's seq is read at its `"seq":` key (a string value's quotes are escaped, so the
 * first unescaped `"seq":` of a line is the key).
 */
export function pageJsonFromText(text: string, afterSeq: number, limit: number): string {
  const lines = splitLines(text.slice(2, -2));
  return pageJson(lines, firstAfter(lines, afterSeq), limit);
}

/**
 * The same page from the newest lines of a history (joined by ",\n"), or null if they may not hold all of it: the
 * oldest of them must come right after `afterSeq` or before it (a message left out is then at or before afterSeq).
 */
export function pageJsonFromNewest(joined: string, afterSeq: number, limit: number): string | null {
  const lines = splitLines(joined);
  if (lines.length === 0 || seqOf(lines[0] as string) > afterSeq + 1) return null;
  return pageJson(lines, firstAfter(lines, afterSeq), limit);
}

/**
 * The same page from the oldest lines of a history, or null if they may not hold all of it: a line must follow
 * the page, which also tells that there is more.
 */
export function pageJsonFromOldest(joined: string, afterSeq: number, limit: number): string | null {
  const lines = splitLines(joined);
  const first = firstAfter(lines, afterSeq);
  return first + limit < lines.length ? pageJson(lines, first, limit) : null;
}

const splitLines = (joined: string): string[] => (joined === "" ? [] : joined.split(",\n"));

function firstAfter(lines: readonly string[], afterSeq: number): number {
  let first = 0;
  while (first < lines.length && seqOf(lines[first] as string) <= afterSeq) first++;
  return first;
}

function pageJson(lines: readonly string[], first: number, limit: number): string {
  const page = lines.slice(first, first + pageLength(lines, first, limit, jsonTextBound, utf8Bytes));
  const more = lines.length - first > page.length;
  const next = more ? seqOf(page[page.length - 1] as string) : null;
  return `{"messages":[${page.join(",")}],"next_after_seq":${next}}`;
}

function seqOf(line: string): number {
  const at = line.indexOf('"seq":');
  if (at < 0) throw new Error("history line without a seq");
  return Number.parseInt(line.slice(at + 6, at + 26), 10);
}
