// Everything the page knows about errors: the server's codes, how a failure is recognised, and what a person reads.
import { HttpError } from "@microsoft/signalr";
import { ErrorCodes, type ErrorCode } from "./contract";
import { toast } from "./toasts";

/** A failure split into its stable code and its text. */
export interface HubError {
  code: ErrorCode | "unauthorized" | "connection" | "unknown";
  message: string;
}

/**
 * The HTTP status behind a failed connection attempt. A failed negotiation arrives wrapped in an error whose
 * message carries the original ("... Status code '401'"), so both forms are read.
 */
export function httpStatusOf(error: unknown): number | null {
  if (error instanceof HttpError) {
    return error.statusCode;
  }
  const match = error instanceof Error ? /Status code '(\d{3})'/.exec(error.message) : null;
  return match ? Number(match[1]) : null;
}

export function isUnauthorized(error: unknown): boolean {
  return httpStatusOf(error) === 401;
}

function isErrorCode(code: string): code is ErrorCode {
  return (ErrorCodes as readonly string[]).includes(code);
}

/** An "error" event of a stream: its code as sent, "unknown" when the page does not know it. */
export function streamError(code: string | null | undefined, message: string | null | undefined): HubError {
  return { code: code && isErrorCode(code) ? code : "unknown", message: message ?? "" };
}

/** Where "<code>: " starts a word of the text; -1 when it does not. */
function codeAt(text: string, code: ErrorCode): number {
  for (let at = text.indexOf(`${code}: `); at >= 0; at = text.indexOf(`${code}: `, at + 1)) {
    if (at === 0 || /\s/.test(text[at - 1]!)) {
      return at;
    }
  }
  return -1;
}

/** A thrown hub or connection error. */
export function parseHubError(error: unknown): HubError {
  if (isUnauthorized(error)) {
    return { code: "unauthorized", message: "The server needs an API key." };
  }
  const text = error instanceof Error ? error.message : String(error);
  if (httpStatusOf(error) === 429) {
    return { code: "queue_full", message: text };
  }
  // The server's HubException message is "<code>: <text>"; the client may put its own prefix before it. The code is
  // the first one in the message: the text after it may name another ("queue_full: The server is busy: ...").
  const found = ErrorCodes.map((code) => ({ code, at: codeAt(text, code) }))
    .filter((candidate) => candidate.at >= 0)
    .sort((a, b) => a.at - b.at)[0];
  if (found) {
    return { code: found.code, message: text.slice(found.at + found.code.length + 2).trim() };
  }
  if (/connection|closed|disconnected|Failed to fetch|WebSocket/i.test(text)) {
    return { code: "connection", message: text };
  }
  return { code: "unknown", message: text };
}

/** What a person should read for each error code: what happened and what to do. */
export function describe(error: HubError): string {
  switch (error.code) {
    case "busy":
      return "This conversation is already answering. Wait for it or press Stop.";
    case "queue_full":
      return "The server is busy right now. Try again in a moment.";
    case "context_length_exceeded":
      return "This conversation is too long for the model's context. Shorten the message or start a new chat.";
    case "unavailable":
      // Also a locked or unreachable session store, not only a model that is loading: the server's text says which.
      return error.message ? sentence(error.message) : "The server is not ready. Try again shortly.";
    case "session_not_found":
      return "This conversation no longer exists.";
    case "invalid_argument":
      return `The server refused the request: ${error.message}`;
    case "no_generation":
      return "That answer is no longer running.";
    case "unauthorized":
      return "The server needs a valid API key.";
    case "connection":
      return "The server cannot be reached.";
    default:
      return error.message || "Something went wrong.";
  }
}

/** The server's text as a sentence: a capital first, a full stop last. */
function sentence(text: string): string {
  const trimmed = text.trim();
  const capital = trimmed.charAt(0).toUpperCase() + trimmed.slice(1);
  return /[.!?]$/.test(capital) ? capital : `${capital}.`;
}

/** Tells the person in a toast: a warning when waiting helps, an error otherwise. */
export function showError(error: HubError | unknown): void {
  const parsed = isHubError(error) ? error : parseHubError(error);
  const kind = parsed.code === "busy" || parsed.code === "queue_full" || parsed.code === "unavailable" ? "warning" : "error";
  toast(kind, describe(parsed));
}

function isHubError(error: unknown): error is HubError {
  return typeof error === "object" && error !== null && "code" in error && "message" in error && !(error instanceof Error);
}
