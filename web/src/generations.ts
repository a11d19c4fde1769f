// The answers this page is following: one per session, each on its hub stream, resumed after a dropped connection.
import type { ISubscription } from "@microsoft/signalr";
import type { ChatStreamEvent } from "./contract";
import { parseHubError, showError, streamError } from "./errors";
import type { ChatHub, StreamObserver } from "./hub";
import type { Conversation, ViewMessage } from "./model";

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
  firstDeltaAt: number | null;
  lastDeltaAt: number | null;
  deltas: number;
  /** The connection dropped under it: resume with ResumeStream once connected again. */
  interrupted: boolean;
  stopRequested: boolean;
  /** Text to give back to the composer when the server refused the message before storing it. */
  readonly sentText: string | null;
  /** The page created the session for this answer's message (a new chat's first send). */
  readonly firstOfSession: boolean;
}

export interface GenerationEvents {
  /** A generation began: its (empty) answer is in its conversation. */
  started(generation: Generation): void;
  /** Its text, figures or state changed: redraw it. */
  changed(generation: Generation): void;
  /** It ended (done, error, refused or stopped); its message is final. */
  ended(generation: Generation): void;
  /** The server no longer has its session. */
  sessionGone(generation: Generation): void;
}

/** How a generation is started on the hub, given the observer its events go to. */
export type Subscribe = (observer: StreamObserver) => ISubscription<ChatStreamEvent>;

export class Generations {
  private readonly running = new Map<string, Generation>();

  constructor(
    private readonly hub: ChatHub,
    private readonly events: GenerationEvents,
  ) {}

  /** The answer running in a session (null: a new chat, which has none). */
  of(sessionId: string | null): Generation | undefined {
    return sessionId === null ? undefined : this.running.get(sessionId);
  }

  /** Streams a new answer into <c>answer</c>, the last message of the conversation. */
  run(conversation: Conversation, answer: ViewMessage, subscribe: Subscribe, options: { sentText?: string; firstOfSession?: boolean } = {}): void {
    answer.streaming = true;
    const generation: Generation = {
      sessionId: conversation.id!,
      conversation,
      message: answer,
      subscription: null,
      attempt: 0,
      resumeFailures: 0,
      lastSeq: 0,
      firstDeltaAt: null,
      lastDeltaAt: null,
      deltas: 0,
      interrupted: false,
      stopRequested: false,
      sentText: options.sentText ?? null,
      firstOfSession: options.firstOfSession ?? false,
    };
    this.running.set(generation.sessionId, generation);
    this.events.started(generation);
    generation.subscription = subscribe(this.observe(generation));
  }

  /** Picks up every stream the connection dropped. */
  resumeInterrupted(): void {
    for (const generation of this.running.values()) {
      if (generation.interrupted) {
        this.resume(generation);
      }
    }
  }

  stop(generation: Generation): void {
    if (generation.stopRequested) {
      return;
    }
    generation.stopRequested = true;
    this.events.changed(generation);
    if (generation.interrupted) {
      return; // resume() stops it once connected again
    }
    this.hub.stopGeneration(generation.sessionId).catch(() => {
      // Cancelling the stream stops the generation on the server too.
      generation.subscription?.dispose();
      generation.message.finishReason = "cancelled";
      this.finish(generation);
    });
  }

  /** Stops following a session's answer without ending it on screen (the session is gone). */
  forget(sessionId: string): void {
    this.running.get(sessionId)?.subscription?.dispose();
    this.running.delete(sessionId);
  }

  private observe(generation: Generation): StreamObserver {
    const attempt = ++generation.attempt;
    const live = (): boolean => generation.attempt === attempt && this.running.get(generation.sessionId) === generation;
    return {
      next: (event) => live() && this.onEvent(generation, event),
      error: (error) => live() && this.onStreamError(generation, error),
      complete: () => live() && this.finish(generation),
    };
  }

  private onEvent(generation: Generation, event: ChatStreamEvent): void {
    if (event.seq <= generation.lastSeq) {
      return; // replayed after a resume: already shown
    }
    generation.lastSeq = event.seq;
    const message = generation.message;
    switch (event.type) {
      case "reasoning":
        message.reasoning += event.text ?? "";
        this.tokenArrived(generation);
        break;
      case "delta":
        message.content += event.text ?? "";
        this.tokenArrived(generation);
        break;
      case "done":
        message.finishReason = event.finishReason ?? "stop";
        message.promptTokens = event.usage?.promptTokens ?? null;
        message.cachedTokens = event.usage?.cachedTokens ?? null;
        message.completionTokens = event.usage?.completionTokens ?? null;
        message.tokensPerSecond = event.timings?.tokensPerSecond ?? null;
        message.contextStart = event.contextStart ?? null;
        this.finish(generation);
        break;
      case "error":
        message.finishReason = "error";
        showError(streamError(event.code, event.message));
        this.finish(generation);
        break;
    }
  }

  /** A token of the answer or of its thinking: both count in the live figures. */
  private tokenArrived(generation: Generation): void {
    generation.deltas++;
    generation.lastDeltaAt = performance.now();
    generation.firstDeltaAt ??= generation.lastDeltaAt;
    this.events.changed(generation);
  }

  private onStreamError(generation: Generation, error: unknown): void {
    const parsed = parseHubError(error);
    if (parsed.code !== "connection" && parsed.code !== "unknown") {
      // The server refused or failed it: nothing more will come. (A resumed answer that ended meanwhile is no
      // error: the session's sync after it ends brings its stored text.)
      if (parsed.code !== "no_generation") {
        showError(parsed);
      }
      const conversation = generation.conversation;
      if (generation.message.content === "" && generation.message.reasoning === "") {
        conversation.messages = conversation.messages.filter((m) => m !== generation.message);
      } else {
        generation.message.finishReason = "error";
      }
      this.finish(generation);
      if (parsed.code === "session_not_found") {
        this.events.sessionGone(generation);
      }
      return;
    }
    // The connection dropped under the stream: keep the answer so far and resume once connected.
    generation.interrupted = true;
    generation.subscription = null;
    this.events.changed(generation);
    window.setTimeout(() => {
      if (generation.interrupted && this.hub.connected && this.running.get(generation.sessionId) === generation) {
        if (++generation.resumeFailures > 3) {
          showError(parsed);
          this.finish(generation);
        } else {
          this.resume(generation);
        }
      }
    }, 0);
  }

  private resume(generation: Generation): void {
    generation.interrupted = false;
    if (generation.stopRequested) {
      this.hub.stopGeneration(generation.sessionId).catch(() => undefined);
    }
    generation.subscription = this.hub.resumeStream(generation.sessionId, generation.lastSeq, this.observe(generation));
    this.events.changed(generation);
  }

  private finish(generation: Generation): void {
    if (this.running.get(generation.sessionId) !== generation) {
      return;
    }
    this.running.delete(generation.sessionId);
    generation.attempt++;
    generation.message.streaming = false;
    this.events.ended(generation);
  }
}
