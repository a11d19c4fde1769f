import type { FinishReason, SessionInfo, SessionMessage, SessionSettings } from "./contract";

let nextKey = 1;

/** A message as the page shows it; <c>index</c> is the server's, null until the server has confirmed it. */
export interface ViewMessage {
  readonly key: number;
  index: number | null;
  role: "user" | "assistant";
  content: string;
  /** On an answer of a reasoning model: its thinking, shown apart from the content ("" when none). */
  reasoning: string;
  /** Whether the person opened (true) or closed (false) the thinking's section; null: never, so it follows the answer. */
  reasoningOpen: boolean | null;
  finishReason: FinishReason | null;
  promptTokens: number | null;
  cachedTokens: number | null;
  completionTokens: number | null;
  tokensPerSecond: number | null;
  /** On an answer: the index of the first message the model saw for it; null when unknown. */
  contextStart: number | null;
  streaming: boolean;
}

export function newMessage(role: "user" | "assistant", content: string, index: number | null = null): ViewMessage {
  return {
    key: nextKey++,
    index,
    role,
    content,
    reasoning: "",
    reasoningOpen: null,
    finishReason: null,
    promptTokens: null,
    cachedTokens: null,
    completionTokens: null,
    tokensPerSecond: null,
    contextStart: null,
    streaming: false,
  };
}

export function fromServer(message: SessionMessage): ViewMessage {
  return {
    ...newMessage(message.role === "user" ? "user" : "assistant", message.content, message.index),
    reasoning: message.reasoning ?? "",
    finishReason: message.finishReason ?? null,
    promptTokens: message.promptTokens ?? null,
    cachedTokens: message.cachedTokens ?? null,
    completionTokens: message.completionTokens ?? null,
    contextStart: message.contextStart ?? null,
  };
}

/** A conversation on screen: a stored session, or a draft that becomes one with its first message. */
export interface Conversation {
  id: string | null;
  info: SessionInfo | null;
  messages: ViewMessage[];
  systemPrompt: string | null;
  settings: SessionSettings;
}

const DraftStorageKey = "llmserver.draft";

interface StoredDraft {
  systemPrompt: string | null;
  settings: SessionSettings;
}

/** A new chat, with the settings chosen for it before its first message (kept in this browser until it is sent). */
export function draftConversation(): Conversation {
  let stored: Partial<StoredDraft> = {};
  try {
    stored = (JSON.parse(localStorage.getItem(DraftStorageKey) ?? "{}") as Partial<StoredDraft> | null) ?? {};
  } catch {
    // Unreadable: start from the defaults.
  }
  return { id: null, info: null, messages: [], systemPrompt: stored.systemPrompt ?? null, settings: stored.settings ?? {} };
}

export const draftSettings = {
  save(conversation: Conversation): void {
    const draft: StoredDraft = { systemPrompt: conversation.systemPrompt, settings: conversation.settings };
    localStorage.setItem(DraftStorageKey, JSON.stringify(draft));
  },
  /** The draft became a session, which keeps them from now on. */
  clear(): void {
    localStorage.removeItem(DraftStorageKey);
  },
};
