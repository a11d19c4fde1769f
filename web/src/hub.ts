import {
  HubConnectionBuilder,
  HubConnectionState,
  LogLevel,
  type HubConnection,
  type IRetryPolicy,
  type ISubscription,
  type RetryContext,
} from "@microsoft/signalr";
import type { ChatStreamEvent, CreateSessionRequest, SessionDetail, SessionInfo, SessionSettings } from "./contract";
import { isUnauthorized } from "./errors";

const ApiKeyStorageKey = "llmserver.apiKey";

/** The API key the server may ask for, kept in this browser only. */
export const apiKey = {
  get(): string | null {
    return localStorage.getItem(ApiKeyStorageKey);
  },
  set(key: string): void {
    localStorage.setItem(ApiKeyStorageKey, key);
  },
  clear(): void {
    localStorage.removeItem(ApiKeyStorageKey);
  },
};

/** Headers for plain fetches to the server (the same key the hub uses). */
export function authHeaders(): HeadersInit {
  const key = apiKey.get();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** Keeps retrying for as long as the page is open, backing off to 10 s; gives up only on a refused API key. */
class RetryForever implements IRetryPolicy {
  private static readonly Delays = [0, 1000, 2000, 5000];

  nextRetryDelayInMilliseconds(context: RetryContext): number | null {
    if (isUnauthorized(context.retryReason)) {
      return null;
    }
    return RetryForever.Delays[context.previousRetryCount] ?? 10_000;
  }
}

export interface StreamObserver {
  next(event: ChatStreamEvent): void;
  error(error: unknown): void;
  complete(): void;
}

/** The chat hub (/hubs/chat) with typed methods. */
export class ChatHub {
  readonly connection: HubConnection;

  constructor() {
    this.connection = new HubConnectionBuilder()
      .withUrl("/hubs/chat", { accessTokenFactory: () => apiKey.get() ?? "" })
      .withAutomaticReconnect(new RetryForever())
      .configureLogging(LogLevel.Warning)
      .build();
  }

  get connected(): boolean {
    return this.connection.state === HubConnectionState.Connected;
  }

  start(): Promise<void> {
    return this.connection.start();
  }

  createSession(request: CreateSessionRequest): Promise<SessionInfo> {
    return this.connection.invoke("CreateSession", request);
  }

  listSessions(): Promise<SessionInfo[]> {
    return this.connection.invoke("ListSessions");
  }

  getSession(id: string): Promise<SessionDetail> {
    return this.connection.invoke("GetSession", id);
  }

  renameSession(id: string, title: string): Promise<SessionInfo> {
    return this.connection.invoke("RenameSession", id, title);
  }

  updateSettings(id: string, settings: SessionSettings, systemPrompt: string | null): Promise<SessionInfo> {
    return this.connection.invoke("UpdateSettings", id, settings, systemPrompt);
  }

  deleteSession(id: string): Promise<void> {
    return this.connection.invoke("DeleteSession", id);
  }

  stopGeneration(id: string): Promise<void> {
    return this.connection.invoke("StopGeneration", id);
  }

  sendMessage(id: string, text: string, observer: StreamObserver): ISubscription<ChatStreamEvent> {
    return this.connection.stream<ChatStreamEvent>("SendMessage", id, text).subscribe(observer);
  }

  regenerate(id: string, observer: StreamObserver): ISubscription<ChatStreamEvent> {
    return this.connection.stream<ChatStreamEvent>("Regenerate", id).subscribe(observer);
  }

  editMessage(id: string, index: number, text: string, observer: StreamObserver): ISubscription<ChatStreamEvent> {
    return this.connection.stream<ChatStreamEvent>("EditMessage", id, index, text).subscribe(observer);
  }

  resumeStream(id: string, afterSeq: number, observer: StreamObserver): ISubscription<ChatStreamEvent> {
    return this.connection.stream<ChatStreamEvent>("ResumeStream", id, afterSeq).subscribe(observer);
  }
}
