import type { ISubscription } from "@microsoft/signalr";
import type { ChatStreamEvent, FinishReason, SessionInfo, SessionMessage, SessionSettings } from "./contract";

let nextKey = 1;

/** A message as the page shows it; <c>index</c> is the server's, null until the server has confirmed it. */
export interface ViewMessage {
  readonly key: number;
  index: number | null;
  role: "user" | "assistant";
  content: string;
  finishReason: FinishReason | null;
  promptTokens: number | null;
  cachedTokens: number | null;
  completionTokens: number | null;
  tokensPerSecond: number | null;
  streaming: boolean;
}

export function newMessage(role: "user" | "assistant", content: string, index: number | null = null): ViewMessage {
  return {
    key: nextKey++,
    index,
    role,
    content,
    finishReason: null,
    promptTokens: null,
    cachedTokens: null,
    completionTokens: null,
    tokensPerSecond: null,
    streaming: false,
  };
}

export function fromServer(message: SessionMessage): ViewMessage {
  return {
    ...newMessage(message.role === "user" ? "user" : "assistant", message.content, message.index),
    finishReason: message.finishReason ?? null,
    promptTokens: message.promptTokens ?? null,
    cachedTokens: message.cachedTokens ?? null,
    completionTokens: message.completionTokens ?? null,
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

export function draftConversation(): Conversation {
  return { id: null, info: null, messages: [], systemPrompt: null, settings: {} };
}

/** One running answer: the stream it arrives on and the figures shown while it runs. */
export interface Generation {
  readonly sessionId: string;
  readonly conversation: Conversation;
  readonly message: ViewMessage;
  subscription: ISubscription<ChatStreamEvent> | null;
  /** Bumped on every (re)subscription: callbacks of an older stream are ignored. */
  attempt: number;
  resumeFailures: number;
  lastSeq: number;
  startedAt: number;
  firstDeltaAt: number | null;
  deltas: number;
  /** The connection dropped under it: resume with ResumeStream once connected again. */
  interrupted: boolean;
  stopRequested: boolean;
  /** Text to give back to the composer when the server refused the message before storing it. */
  sentText: string | null;
}
