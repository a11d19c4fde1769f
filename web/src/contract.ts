// The hub contract (hub-contract in the sessions feature): DTOs as SignalR's JSON protocol sends them (camelCase).

export interface SessionSettings {
  temperature?: number | null;
  topP?: number | null;
  maxTokens?: number | null;
  seed?: number | null;
}

export interface CreateSessionRequest {
  title?: string | null;
  systemPrompt?: string | null;
  settings?: SessionSettings | null;
}

export interface SessionInfo {
  id: string;
  title: string;
  systemPrompt?: string | null;
  settings: SessionSettings;
  createdAt: string;
  updatedAt: string;
  messageCount: number;
  generating: boolean;
}

export type Role = "system" | "user" | "assistant";
/** "interrupted": the server stopped (a crash or kill) while writing the answer; it keeps the text saved until then. */
export type FinishReason = "stop" | "length" | "cancelled" | "error" | "interrupted";

export interface SessionMessage {
  index: number;
  role: Role;
  content: string;
  createdAt: string;
  promptTokens?: number | null;
  cachedTokens?: number | null;
  completionTokens?: number | null;
  finishReason?: FinishReason | null;
  /** On an assistant message: the index of the first message the model saw for it (older ones fell out of its context). */
  contextStart?: number | null;
  /** On an assistant message of a reasoning model: what it thought before answering (kept apart from content). */
  reasoning?: string | null;
  /** On a finished assistant message: how many of its completion tokens went to the thinking (0 when none). */
  reasoningTokens?: number | null;
}

export interface SessionDetail {
  info: SessionInfo;
  messages: SessionMessage[];
}

export interface ChatUsage {
  promptTokens: number;
  cachedTokens: number;
  completionTokens: number;
  /** How many of the completion tokens went to a reasoning model's thinking (0 when none). */
  reasoningTokens: number;
}

export interface ChatTimings {
  queuedMs: number;
  prefillMs: number;
  decodeMs: number;
  tokensPerSecond: number;
}

export interface ChatStreamEvent {
  seq: number;
  /** "reasoning": text of a reasoning model's thinking (before the answer); "delta": text of the answer. */
  type: "reasoning" | "delta" | "done" | "error";
  text?: string | null;
  finishReason?: FinishReason | null;
  usage?: ChatUsage | null;
  timings?: ChatTimings | null;
  code?: string | null;
  message?: string | null;
  /** On "done": the index of the first stored message the model saw for this answer. */
  contextStart?: number | null;
}

/** Stable error codes: a HubException's message starts with one of them, then ": ". The one list of them. */
export const ErrorCodes = [
  "session_not_found",
  "busy",
  "queue_full",
  "context_length_exceeded",
  "invalid_argument",
  "unavailable",
  "no_generation",
  "internal_error",
] as const;

export type ErrorCode = (typeof ErrorCodes)[number];
