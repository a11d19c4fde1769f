import { HubConnectionState } from "@microsoft/signalr";
import type { ChatStreamEvent, SessionDetail, SessionInfo, SessionSettings } from "./contract";
import { byId, copyText, el, flashLabel } from "./dom";
import { ChatHub, apiKey, httpStatusOf, isUnauthorized, parseHubError, type HubError, type StreamObserver } from "./hub";
import { Icons, icon } from "./icons";
import { renderMarkdown } from "./markdown";
import { draftConversation, fromServer, newMessage, type Conversation, type Generation, type ViewMessage } from "./model";
import { fetchHealth, fetchModelName, type Health } from "./serverStatus";
import { dismissToast, toast } from "./toasts";

const TitleLength = 48;
const HealthPollMs = 10_000;
const ConnectionToast = "connection";

/** What a person should read for each error code: what happened and what to do. */
function describe(error: HubError): string {
  switch (error.code) {
    case "busy":
      return "This conversation is already answering. Wait for it or press Stop.";
    case "overloaded":
      return "The server is busy right now. Try again in a moment.";
    case "context_length_exceeded":
      return "This conversation is too long for the model's context. Shorten the message or start a new chat.";
    case "unavailable":
      return "The model is not ready (loading or shutting down). Try again shortly.";
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

function titleFrom(text: string): string {
  const line = text.trim().split("\n")[0]!.replace(/\s+/g, " ");
  return line.length > TitleLength ? `${line.slice(0, TitleLength - 1)}…` : line;
}

function sessionIdFromLocation(): string | null {
  const match = /^#\/c\/(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]!) : null;
}

function formatNumber(value: number): string {
  return value.toLocaleString("en-US");
}

/** The chat page: conversation list, transcript, composer, settings; all server traffic goes through the hub. */
export class ChatApp {
  private readonly hub = new ChatHub();
  private sessions: SessionInfo[] = [];
  private current: Conversation = draftConversation();
  private readonly generations = new Map<string, Generation>();
  private readonly messageNodes = new Map<number, HTMLLIElement>();
  /** Tokens per second of finished answers, by "session:index"; the server does not store speeds. */
  private readonly speeds = new Map<string, number>();
  private renderQueued = false;
  private connectAttempts = 0;
  private everConnected = false;
  private openToken = 0;
  private health: Health = "not-ready";
  private modelName: string | null = null;
  private keyPrompt: Promise<void> | null = null;

  private readonly ui = {
    app: byId("app"),
    sessionList: byId<HTMLUListElement>("session-list"),
    sessionEmpty: byId("session-empty"),
    newChat: byId<HTMLButtonElement>("new-chat"),
    openSidebar: byId<HTMLButtonElement>("open-sidebar"),
    closeSidebar: byId<HTMLButtonElement>("close-sidebar"),
    scrim: byId("scrim"),
    statusDot: byId("status-dot"),
    statusText: byId("status-text"),
    modelName: byId("model-name"),
    changeKey: byId<HTMLButtonElement>("change-key"),
    title: byId("chat-title"),
    openSettings: byId<HTMLButtonElement>("open-settings"),
    transcript: byId("transcript"),
    emptyChat: byId("empty-chat"),
    messages: byId<HTMLOListElement>("messages"),
    composer: byId<HTMLFormElement>("composer"),
    prompt: byId<HTMLTextAreaElement>("prompt"),
    send: byId<HTMLButtonElement>("send"),
    stop: byId<HTMLButtonElement>("stop"),
    liveStats: byId("live-stats"),
    settingsDialog: byId<HTMLDialogElement>("settings-dialog"),
    settingsForm: byId<HTMLFormElement>("settings-form"),
    settingsCancel: byId<HTMLButtonElement>("settings-cancel"),
    settingsError: byId("settings-error"),
    systemPrompt: byId<HTMLTextAreaElement>("system-prompt"),
    temperature: byId<HTMLInputElement>("temperature"),
    topP: byId<HTMLInputElement>("top-p"),
    maxTokens: byId<HTMLInputElement>("max-tokens"),
    keyDialog: byId<HTMLDialogElement>("key-dialog"),
    keyForm: byId<HTMLFormElement>("key-form"),
    keyReason: byId("key-reason"),
    keyInput: byId<HTMLInputElement>("api-key"),
    confirmDialog: byId<HTMLDialogElement>("confirm-dialog"),
    confirmText: byId("confirm-text"),
  };

  start(): void {
    this.bindEvents();
    const connection = this.hub.connection;
    connection.onreconnecting(() => this.onReconnecting());
    connection.onreconnected(() => void this.onConnected());
    connection.onclose((error) => void this.onClosed(error));
    this.ui.changeKey.hidden = apiKey.get() === null;
    this.renderTranscript();
    this.renderStatus();
    void this.connect();
    void this.pollHealthOnce();
    void this.pollHealth();
  }

  // ---- connection ----

  private async connect(): Promise<void> {
    this.renderStatus();
    try {
      await this.hub.start();
    } catch (error) {
      if (isUnauthorized(error)) {
        await this.askForKey(apiKey.get() ? "The server refused this API key." : "This server needs an API key.");
        void this.connect();
        return;
      }
      const delay = Math.min(10_000, 1000 * 2 ** this.connectAttempts++);
      const status = httpStatusOf(error);
      const busy = status === 429 || status === 503;
      toast(busy ? "warning" : "error", busy ? `${describe(parseHubError(error))} Retrying…` : "The server is down or unreachable. Retrying…", {
        key: ConnectionToast,
        timeout: 0,
      });
      this.renderStatus();
      window.setTimeout(() => void this.connect(), delay);
      return;
    }
    this.connectAttempts = 0;
    await this.onConnected();
  }

  private async onConnected(): Promise<void> {
    const firstTime = !this.everConnected;
    this.everConnected = true;
    if (firstTime) {
      dismissToast(ConnectionToast);
    } else {
      toast("success", "Reconnected.", { key: ConnectionToast });
    }
    this.renderStatus();
    void this.pollHealthOnce();
    if (this.modelName === null) {
      void this.loadModelName(); // the first try may have lacked the API key
    }
    await this.refreshSessions();
    for (const generation of this.generations.values()) {
      if (generation.interrupted) {
        this.resume(generation);
      }
    }
    if (firstTime) {
      await this.openFromLocation();
    } else if (this.current.id && !this.generations.has(this.current.id)) {
      // It may have finished, or been changed elsewhere, while we were away.
      await this.syncSession(this.current.id, null);
    }
  }

  private onReconnecting(): void {
    this.renderStatus();
    toast("warning", "Connection lost. Reconnecting…", { key: ConnectionToast, timeout: 0 });
  }

  private async onClosed(error: Error | undefined): Promise<void> {
    this.renderStatus();
    if (isUnauthorized(error)) {
      await this.askForKey("The server refused this API key.");
    }
    void this.connect();
  }

  private renderStatus(): void {
    const state = this.hub.connection.state;
    let text: string;
    let level: "ok" | "warn" | "down" | "idle";
    if (state === HubConnectionState.Connected) {
      [text, level] = this.health === "ready" ? ["Connected", "ok"] : ["Connected · model not ready", "warn"];
    } else if (state === HubConnectionState.Reconnecting) {
      [text, level] = ["Reconnecting…", "warn"];
    } else if (this.connectAttempts > 0 || this.everConnected) {
      [text, level] = ["Server down", "down"];
    } else {
      [text, level] = ["Connecting…", "idle"];
    }
    this.ui.statusText.textContent = text;
    this.ui.statusDot.dataset.level = level;
  }

  private async loadModelName(): Promise<void> {
    const name = await fetchModelName(AbortSignal.timeout(10_000)).catch(() => null);
    this.modelName = name;
    this.ui.modelName.textContent = name ?? "unknown";
    this.ui.modelName.title = name ?? "";
  }

  private async pollHealth(): Promise<void> {
    for (;;) {
      await new Promise((resolve) => window.setTimeout(resolve, HealthPollMs));
      if (!document.hidden) {
        await this.pollHealthOnce();
      }
    }
  }

  private async pollHealthOnce(): Promise<void> {
    const before = this.health;
    this.health = await fetchHealth(AbortSignal.timeout(5000));
    this.renderStatus();
    if (this.health === "ready" && before !== "ready") {
      void this.loadModelName(); // it could not be read while the model was loading
    }
  }

  private askForKey(reason: string): Promise<void> {
    if (this.keyPrompt) {
      return this.keyPrompt;
    }
    this.keyPrompt = new Promise<void>((resolve) => {
      const { keyDialog, keyForm, keyInput, keyReason } = this.ui;
      keyReason.textContent = reason;
      keyInput.value = "";
      const onSubmit = (event: SubmitEvent): void => {
        event.preventDefault();
        const key = keyInput.value.trim();
        if (!key) {
          keyInput.focus();
          return;
        }
        apiKey.set(key);
        this.ui.changeKey.hidden = false;
        keyForm.removeEventListener("submit", onSubmit);
        keyDialog.close();
        this.keyPrompt = null;
        resolve();
      };
      keyForm.addEventListener("submit", onSubmit);
      keyDialog.showModal();
      keyInput.focus();
    });
    return this.keyPrompt;
  }

  private async changeKey(): Promise<void> {
    await this.askForKey("Enter the API key to use from now on.");
    await this.hub.connection.stop();
  }

  // ---- conversations ----

  private async refreshSessions(): Promise<void> {
    try {
      this.sessions = await this.hub.listSessions();
    } catch (error) {
      this.showError(error);
    }
    this.renderSidebar();
  }

  private upsertSession(info: SessionInfo): void {
    const at = this.sessions.findIndex((s) => s.id === info.id);
    if (at >= 0) {
      this.sessions[at] = info;
    } else {
      this.sessions.unshift(info);
    }
    if (this.current.id === info.id) {
      this.current.info = info;
      this.current.systemPrompt = info.systemPrompt ?? null;
      this.current.settings = info.settings ?? {};
      this.renderTitle();
    }
    this.renderSidebar();
  }

  private navigate(id: string | null): void {
    const hash = id ? `#/c/${encodeURIComponent(id)}` : "#/";
    if (location.hash !== hash) {
      location.hash = hash;
    } else {
      void this.openFromLocation();
    }
    this.closeSidebar();
  }

  private async openFromLocation(): Promise<void> {
    const id = sessionIdFromLocation();
    if (id === null) {
      this.showDraft();
    } else if (id !== this.current.id || this.current.info === null) {
      await this.openSession(id);
    }
  }

  private showDraft(): void {
    this.openToken++;
    if (this.current.id === null && this.current.messages.length === 0) {
      this.renderTranscript();
    } else {
      this.current = draftConversation();
      this.renderTranscript();
    }
    this.renderSidebar();
    this.ui.prompt.focus();
  }

  private async openSession(id: string): Promise<void> {
    const token = ++this.openToken;
    const running = this.generations.get(id);
    if (running) {
      this.current = running.conversation;
      this.renderTranscript();
      this.renderSidebar();
      return;
    }
    let detail: SessionDetail;
    try {
      detail = await this.hub.getSession(id);
    } catch (error) {
      if (token === this.openToken) {
        this.showError(error);
        if (parseHubError(error).code === "session_not_found") {
          this.sessions = this.sessions.filter((s) => s.id !== id);
          this.navigate(null);
        }
      }
      return;
    }
    if (token !== this.openToken) {
      return;
    }
    const conversation: Conversation = { ...draftConversation(), id, info: detail.info };
    this.current = conversation;
    this.applyDetail(conversation, detail);
    this.upsertSession(detail.info);
    this.renderTranscript();
    if (detail.info.generating && !this.generations.has(id)) {
      this.attachToRunningAnswer(conversation);
    }
  }

  /** Makes the conversation match the server's copy, keeping the page's own figures (speeds). */
  private applyDetail(conversation: Conversation, detail: SessionDetail): void {
    const id = detail.info.id;
    const incoming = detail.messages.filter((m) => m.role !== "system").map(fromServer);
    const last = incoming.at(-1);
    if (detail.info.generating && last?.role === "assistant" && last.finishReason === null) {
      incoming.pop(); // the running answer: it arrives through ResumeStream
    }
    for (const message of incoming) {
      message.tokensPerSecond = message.index === null ? null : (this.speeds.get(`${id}:${message.index}`) ?? null);
    }
    const sameShape =
      conversation.messages.length === incoming.length &&
      conversation.messages.every((m, i) => m.role === incoming[i]!.role && m.content === incoming[i]!.content);
    conversation.info = detail.info;
    conversation.systemPrompt = detail.info.systemPrompt ?? null;
    conversation.settings = detail.info.settings ?? {};
    if (sameShape) {
      conversation.messages.forEach((m, i) => {
        const fresh = incoming[i]!;
        m.index = fresh.index;
        m.finishReason = fresh.finishReason;
        m.promptTokens = fresh.promptTokens;
        m.cachedTokens = fresh.cachedTokens;
        m.completionTokens = fresh.completionTokens;
        m.tokensPerSecond = fresh.tokensPerSecond ?? m.tokensPerSecond;
      });
      if (conversation === this.current) {
        this.refreshMessageChrome();
      }
    } else {
      conversation.messages = incoming;
      if (conversation === this.current) {
        this.renderTranscript();
      }
    }
  }

  /** Reloads one session after its answer ended; gives back text the server did not keep. */
  private async syncSession(id: string, finished: Generation | null): Promise<void> {
    let detail: SessionDetail;
    try {
      detail = await this.hub.getSession(id);
    } catch (error) {
      if (parseHubError(error).code === "session_not_found") {
        this.sessions = this.sessions.filter((s) => s.id !== id);
        this.renderSidebar();
      }
      return;
    }
    const lastAssistant = detail.messages.filter((m) => m.role === "assistant").at(-1);
    if (finished?.message.tokensPerSecond && lastAssistant) {
      this.speeds.set(`${id}:${lastAssistant.index}`, finished.message.tokensPerSecond);
    }
    const conversation = finished?.conversation ?? (this.current.id === id ? this.current : null);
    if (conversation && !this.generations.has(id)) {
      this.applyDetail(conversation, detail);
    }
    this.upsertSession(detail.info);
    void this.refreshSessions();

    const sent = finished?.sentText;
    if (sent && !detail.messages.some((m) => m.role === "user" && m.content === sent) && this.ui.prompt.value === "") {
      this.ui.prompt.value = sent;
      this.autosize();
    }
  }

  private async startRename(item: HTMLLIElement, info: SessionInfo): Promise<void> {
    const input = el("input", {
      class: "rename-input",
      attrs: { type: "text", "aria-label": "Conversation title", maxlength: "200" },
    });
    input.value = info.title;
    item.replaceChildren(input);
    input.focus();
    input.select();
    const title = await new Promise<string | null>((resolve) => {
      input.addEventListener("keydown", (event) => {
        if (event.key === "Enter") {
          event.preventDefault();
          resolve(input.value.trim());
        } else if (event.key === "Escape") {
          event.preventDefault();
          resolve(null);
        }
      });
      input.addEventListener("blur", () => resolve(input.value.trim()));
    });
    if (!title || title === info.title) {
      this.renderSidebar();
      return;
    }
    try {
      this.upsertSession(await this.hub.renameSession(info.id, title));
    } catch (error) {
      this.showError(error);
      this.renderSidebar();
    }
  }

  private async deleteSession(info: SessionInfo): Promise<void> {
    const { confirmDialog, confirmText } = this.ui;
    confirmText.textContent = `Delete “${info.title || "Untitled"}”? This cannot be undone.`;
    confirmDialog.returnValue = "";
    confirmDialog.showModal();
    await new Promise((resolve) => confirmDialog.addEventListener("close", resolve, { once: true }));
    if (confirmDialog.returnValue !== "ok") {
      return;
    }
    try {
      await this.hub.deleteSession(info.id);
    } catch (error) {
      if (parseHubError(error).code !== "session_not_found") {
        this.showError(error);
        return;
      }
    }
    const generation = this.generations.get(info.id);
    if (generation) {
      generation.subscription?.dispose();
      this.generations.delete(info.id);
    }
    this.sessions = this.sessions.filter((s) => s.id !== info.id);
    if (this.current.id === info.id) {
      this.navigate(null);
    }
    this.renderSidebar();
  }

  // ---- sending and streaming ----

  private async send(): Promise<void> {
    const text = this.ui.prompt.value;
    if (!text.trim() || this.runningHere()) {
      return;
    }
    if (!this.hub.connected) {
      toast("warning", "Not connected to the server. Your message stays in the box; send it once connected.");
      return;
    }
    const conversation = this.current;
    this.ui.prompt.value = "";
    this.autosize();
    if (conversation.id === null) {
      let info: SessionInfo;
      try {
        info = await this.hub.createSession({
          title: titleFrom(text),
          systemPrompt: conversation.systemPrompt,
          settings: conversation.settings,
        });
      } catch (error) {
        this.ui.prompt.value ||= text;
        this.autosize();
        this.showError(error);
        return;
      }
      conversation.id = info.id;
      conversation.info = info;
      this.upsertSession(info);
      if (conversation === this.current) {
        history.replaceState(null, "", `#/c/${encodeURIComponent(info.id)}`);
      }
    }
    const sessionId = conversation.id;
    const answer = newMessage("assistant", "");
    conversation.messages.push(newMessage("user", text), answer);
    this.runGeneration(conversation, answer, text, (observer) => this.hub.sendMessage(sessionId, text, observer));
  }

  private regenerate(): void {
    const conversation = this.current;
    const last = conversation.messages.at(-1);
    if (!conversation.id || this.runningHere() || last?.role !== "assistant") {
      return;
    }
    const sessionId = conversation.id;
    conversation.messages.pop();
    const answer = newMessage("assistant", "");
    conversation.messages.push(answer);
    this.runGeneration(conversation, answer, null, (observer) => this.hub.regenerate(sessionId, observer));
  }

  private resendEdited(message: ViewMessage, text: string): void {
    const conversation = this.current;
    const at = conversation.messages.indexOf(message);
    const index = message.index;
    if (!conversation.id || this.runningHere() || at < 0 || index === null || !text.trim()) {
      return;
    }
    const sessionId = conversation.id;
    conversation.messages.splice(at + 1);
    message.content = text;
    const answer = newMessage("assistant", "");
    conversation.messages.push(answer);
    this.runGeneration(conversation, answer, null, (observer) => this.hub.editMessage(sessionId, index, text, observer));
  }

  /** Follows an answer that is already running on the server (another tab, or before a reload). */
  private attachToRunningAnswer(conversation: Conversation): void {
    const sessionId = conversation.id!;
    const answer = newMessage("assistant", "");
    conversation.messages.push(answer);
    this.runGeneration(conversation, answer, null, (observer) => this.hub.resumeStream(sessionId, 0, observer));
  }

  private runGeneration(
    conversation: Conversation,
    answer: ViewMessage,
    sentText: string | null,
    subscribe: (observer: StreamObserver) => Generation["subscription"],
  ): void {
    answer.streaming = true;
    const generation: Generation = {
      sessionId: conversation.id!,
      conversation,
      message: answer,
      subscription: null,
      attempt: 0,
      resumeFailures: 0,
      lastSeq: 0,
      startedAt: performance.now(),
      firstDeltaAt: null,
      deltas: 0,
      interrupted: false,
      stopRequested: false,
      sentText,
    };
    this.generations.set(generation.sessionId, generation);
    if (conversation === this.current) {
      this.renderTranscript();
      this.scrollToBottom();
    }
    this.renderSidebar();
    generation.subscription = subscribe(this.observe(generation));
  }

  private observe(generation: Generation): StreamObserver {
    const attempt = ++generation.attempt;
    const live = (): boolean => generation.attempt === attempt && this.generations.get(generation.sessionId) === generation;
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
      case "delta":
        message.content += event.text ?? "";
        generation.deltas++;
        generation.firstDeltaAt ??= performance.now();
        this.queueRender();
        break;
      case "done":
        message.finishReason = event.finishReason ?? "stop";
        message.promptTokens = event.usage?.promptTokens ?? null;
        message.cachedTokens = event.usage?.cachedTokens ?? null;
        message.completionTokens = event.usage?.completionTokens ?? null;
        message.tokensPerSecond = event.timings?.tokensPerSecond ?? null;
        this.finish(generation);
        break;
      case "error":
        message.finishReason = "error";
        this.showError({ code: (event.code ?? "unknown") as HubError["code"], message: event.message ?? "" });
        this.finish(generation);
        break;
    }
  }

  private onStreamError(generation: Generation, error: unknown): void {
    const parsed = parseHubError(error);
    if (parsed.code !== "connection" && parsed.code !== "unknown") {
      // The server refused or failed it: nothing more will come. (A resumed answer that ended meanwhile is no
      // error: the sync in finish() brings its stored text.)
      if (parsed.code !== "no_generation") {
        this.showError(parsed);
      }
      const conversation = generation.conversation;
      if (generation.message.content === "") {
        conversation.messages = conversation.messages.filter((m) => m !== generation.message);
      } else {
        generation.message.finishReason = "error";
      }
      this.finish(generation);
      if (parsed.code === "session_not_found" && conversation === this.current) {
        this.sessions = this.sessions.filter((s) => s.id !== generation.sessionId);
        this.navigate(null);
      }
      return;
    }
    // The connection dropped under the stream: keep the answer so far and resume once connected.
    generation.interrupted = true;
    generation.subscription = null;
    this.renderGeneration(generation);
    window.setTimeout(() => {
      if (generation.interrupted && this.hub.connected && this.generations.get(generation.sessionId) === generation) {
        if (++generation.resumeFailures > 3) {
          this.showError(parsed);
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
    this.renderGeneration(generation);
  }

  private stop(): void {
    const generation = this.current.id ? this.generations.get(this.current.id) : undefined;
    if (!generation || generation.stopRequested) {
      return;
    }
    generation.stopRequested = true;
    this.renderComposer();
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

  private finish(generation: Generation): void {
    if (this.generations.get(generation.sessionId) !== generation) {
      return;
    }
    this.generations.delete(generation.sessionId);
    generation.attempt++;
    generation.message.streaming = false;
    if (generation.conversation === this.current) {
      const node = this.messageNodes.get(generation.message.key);
      if (node) {
        this.fillMessage(node, generation.message);
      }
      this.refreshMessageChrome();
      this.renderComposer();
      this.renderLiveStats();
    }
    this.renderSidebar();
    void this.syncSession(generation.sessionId, generation);
  }

  private runningHere(): boolean {
    return this.current.id !== null && this.generations.has(this.current.id);
  }

  private showError(error: unknown): void {
    const parsed =
      typeof error === "object" && error !== null && "code" in error && "message" in error ? (error as HubError) : parseHubError(error);
    const kind = parsed.code === "busy" || parsed.code === "overloaded" ? "warning" : "error";
    toast(kind, describe(parsed));
  }

  // ---- rendering ----

  private queueRender(): void {
    if (this.renderQueued) {
      return;
    }
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      const generation = this.current.id ? this.generations.get(this.current.id) : undefined;
      if (generation) {
        this.renderGeneration(generation);
      }
    });
  }

  /** Redraws only the running answer's text and figures, so its live region is not replaced on every frame. */
  private renderGeneration(generation: Generation): void {
    if (generation.conversation !== this.current) {
      return;
    }
    const node = this.messageNodes.get(generation.message.key);
    const body = node?.querySelector<HTMLElement>(".msg-body");
    if (!node || !body) {
      return;
    }
    const stick = this.nearBottom();
    renderMarkdown(body, generation.message.content, true);
    // The caret sits at the end of the last paragraph or list item, where the next words will appear.
    let tail: Element = body;
    for (let next = body.lastElementChild; next && /^(P|UL|OL|LI|BLOCKQUOTE|H[1-6])$/.test(next.tagName); next = next.lastElementChild) {
      tail = next;
    }
    tail.append(el("span", { class: generation.interrupted ? "reconnecting" : "caret", attrs: { "aria-hidden": "true" } }));
    node.querySelector(".msg-meta")!.textContent = generation.interrupted ? "Reconnecting…" : "";
    this.renderLiveStats();
    if (stick) {
      this.scrollToBottom();
    }
  }

  private renderTitle(): void {
    const title = this.current.info?.title || (this.current.id ? "Untitled" : "New chat");
    this.ui.title.textContent = title;
    document.title = `${title} · LlmServer`;
  }

  private renderSidebar(): void {
    const items = this.sessions.map((info) => this.sessionItem(info));
    this.ui.sessionList.replaceChildren(...items);
    this.ui.sessionEmpty.hidden = items.length > 0;
  }

  private sessionItem(info: SessionInfo): HTMLLIElement {
    const title = info.title || "Untitled";
    const active = info.id === this.current.id;
    const busy = this.generations.has(info.id) || info.generating;
    const open = el(
      "button",
      { class: "session-open", attrs: { type: "button", title } },
      el("span", { class: "session-title", text: title }),
      busy ? el("span", { class: "session-busy", attrs: { role: "img", "aria-label": "answering" } }) : null,
    );
    if (active) {
      open.setAttribute("aria-current", "page");
    }
    open.addEventListener("click", () => this.navigate(info.id));
    const item = el("li", { class: active ? "session active" : "session", attrs: { "data-session-id": info.id } });
    const rename = el(
      "button",
      { class: "icon-button session-action", attrs: { type: "button", "aria-label": `Rename “${title}”`, title: "Rename" } },
      icon(Icons.pencil),
    );
    rename.addEventListener("click", () => void this.startRename(item, info));
    const remove = el(
      "button",
      { class: "icon-button session-action", attrs: { type: "button", "aria-label": `Delete “${title}”`, title: "Delete" } },
      icon(Icons.trash),
    );
    remove.addEventListener("click", () => void this.deleteSession(info));
    item.append(open, rename, remove);
    return item;
  }

  private renderTranscript(): void {
    this.messageNodes.clear();
    const items = this.current.messages.map((message) => {
      const node = el("li", { class: `msg msg-${message.role}`, attrs: { "data-key": String(message.key) } });
      this.messageNodes.set(message.key, node);
      this.fillMessage(node, message);
      return node;
    });
    this.ui.messages.replaceChildren(...items);
    this.ui.emptyChat.hidden = items.length > 0;
    this.renderTitle();
    this.refreshMessageChrome();
    this.renderComposer();
    this.renderLiveStats();
    this.scrollToBottom();
    const generation = this.current.id ? this.generations.get(this.current.id) : undefined;
    if (generation) {
      this.renderGeneration(generation);
    }
  }

  private fillMessage(node: HTMLLIElement, message: ViewMessage): void {
    const who = el("div", { class: "msg-role", text: message.role === "user" ? "You" : "Assistant" });
    const actions = el("div", { class: "msg-actions" });
    const meta = el("div", { class: "msg-meta" });
    if (message.role === "user") {
      node.replaceChildren(who, el("div", { class: "bubble", text: message.content }), actions);
    } else {
      const body = el("div", {
        class: "msg-body markdown",
        attrs: { "aria-live": "polite", "aria-busy": String(message.streaming), "aria-label": "Answer" },
      });
      renderMarkdown(body, message.content, message.streaming);
      node.replaceChildren(who, body, meta, actions);
    }
    node.classList.toggle("streaming", message.streaming);
  }

  /** Meta lines and buttons depend on what runs and which message is last: redraw them together. */
  private refreshMessageChrome(): void {
    const running = this.runningHere();
    const messages = this.current.messages;
    messages.forEach((message, position) => {
      const node = this.messageNodes.get(message.key);
      if (!node) {
        return;
      }
      const actions = node.querySelector(".msg-actions")!;
      node.querySelector(".msg-body")?.setAttribute("aria-busy", String(message.streaming));
      node.classList.toggle("streaming", message.streaming);
      if (message.role === "user") {
        const edit = this.actionButton("Edit", "Edit and resend this message", () => this.startEdit(node, message));
        edit.disabled = running || message.index === null;
        actions.replaceChildren(edit);
        return;
      }
      if (!message.streaming) {
        node.querySelector(".msg-meta")!.textContent = this.metaText(message);
      }
      const buttons: HTMLButtonElement[] = [];
      if (!message.streaming) {
        const copy = this.actionButton("Copy", "Copy this answer", () => {
          void copyText(message.content).then((ok) => flashLabel(copy, ok ? "Copied" : "Copy failed"));
        });
        buttons.push(copy);
      }
      if (position === messages.length - 1 && !message.streaming) {
        const again = this.actionButton("Regenerate", "Regenerate this answer", () => this.regenerate());
        again.disabled = running;
        buttons.push(again);
      }
      actions.replaceChildren(...buttons);
    });
  }

  private actionButton(label: string, description: string, onClick: () => void): HTMLButtonElement {
    const button = el("button", { class: "action", text: label, attrs: { type: "button", "aria-label": description } });
    button.addEventListener("click", onClick);
    return button;
  }

  private metaText(message: ViewMessage): string {
    const parts: string[] = [];
    if (message.completionTokens !== null) {
      parts.push(`${formatNumber(message.completionTokens)} tokens`);
    }
    if (message.promptTokens !== null) {
      const cached = message.cachedTokens ? ` (${formatNumber(message.cachedTokens)} cached)` : "";
      parts.push(`prompt ${formatNumber(message.promptTokens)}${cached}`);
    }
    if (message.tokensPerSecond) {
      parts.push(`${message.tokensPerSecond.toFixed(1)} tok/s`);
    }
    switch (message.finishReason) {
      case "cancelled":
        parts.push("stopped");
        break;
      case "length":
        parts.push("reached the token limit");
        break;
      case "error":
        parts.push("failed");
        break;
      default:
        break;
    }
    return parts.join(" · ");
  }

  private startEdit(node: HTMLLIElement, message: ViewMessage): void {
    const area = el("textarea", { class: "edit-input", attrs: { "aria-label": "Edit message", rows: "3" } });
    area.value = message.content;
    const save = el("button", { class: "button primary", text: "Save and send", attrs: { type: "submit" } });
    const cancel = el("button", { class: "button", text: "Cancel", attrs: { type: "button" } });
    const form = el("form", { class: "edit-form" }, area, el("div", { class: "edit-actions" }, cancel, save));
    const close = (): void => {
      this.fillMessage(node, message);
      this.refreshMessageChrome();
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!area.value.trim() || this.runningHere()) {
        return;
      }
      this.resendEdited(message, area.value);
    });
    cancel.addEventListener("click", close);
    area.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      } else if (event.key === "Escape") {
        event.preventDefault();
        close();
      }
    });
    node.replaceChildren(el("div", { class: "msg-role", text: "You" }), form);
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }

  private renderComposer(): void {
    const generation = this.current.id ? this.generations.get(this.current.id) : undefined;
    this.ui.send.hidden = generation !== undefined;
    this.ui.stop.hidden = generation === undefined;
    this.ui.stop.disabled = generation?.stopRequested ?? false;
    this.ui.stop.textContent = generation?.stopRequested ? "Stopping…" : "Stop";
  }

  private renderLiveStats(): void {
    const generation = this.current.id ? this.generations.get(this.current.id) : undefined;
    let text = "";
    if (generation) {
      if (generation.firstDeltaAt === null) {
        text = generation.interrupted ? "Reconnecting…" : "Waiting for the first token…";
      } else {
        const seconds = (performance.now() - generation.firstDeltaAt) / 1000;
        const rate = seconds > 0.05 ? ` · ${(generation.deltas / seconds).toFixed(1)} tok/s` : "";
        text = `Generating · ${formatNumber(generation.deltas)} tokens${rate}`;
      }
    }
    this.ui.liveStats.textContent = text;
  }

  private nearBottom(): boolean {
    const t = this.ui.transcript;
    return t.scrollHeight - t.scrollTop - t.clientHeight < 80;
  }

  private scrollToBottom(): void {
    this.ui.transcript.scrollTop = this.ui.transcript.scrollHeight;
  }

  private autosize(): void {
    const prompt = this.ui.prompt;
    prompt.style.height = "auto";
    prompt.style.height = `${Math.min(prompt.scrollHeight, Math.round(window.innerHeight * 0.4))}px`;
  }

  // ---- settings ----

  private openSettings(): void {
    const { systemPrompt, temperature, topP, maxTokens, settingsError, settingsDialog } = this.ui;
    const settings = this.current.settings;
    systemPrompt.value = this.current.systemPrompt ?? "";
    temperature.value = settings.temperature?.toString() ?? "";
    topP.value = settings.topP?.toString() ?? "";
    maxTokens.value = settings.maxTokens?.toString() ?? "";
    settingsError.textContent = "";
    settingsDialog.showModal();
    systemPrompt.focus();
  }

  private readSettings(): SessionSettings | string {
    const number = (input: HTMLInputElement): number | null => (input.value.trim() === "" ? null : Number(input.value));
    const temperature = number(this.ui.temperature);
    const topP = number(this.ui.topP);
    const maxTokens = number(this.ui.maxTokens);
    if (temperature !== null && !(temperature >= 0 && temperature <= 2)) {
      return "Temperature must be between 0 and 2.";
    }
    if (topP !== null && !(topP > 0 && topP <= 1)) {
      return "Top p must be above 0 and at most 1.";
    }
    if (maxTokens !== null && !(Number.isInteger(maxTokens) && maxTokens >= 1)) {
      return "Max tokens must be a whole number of at least 1.";
    }
    // Seed has no field here; keep whatever the session has.
    return { temperature, topP, maxTokens, seed: this.current.settings.seed ?? null };
  }

  private async saveSettings(): Promise<void> {
    const settings = this.readSettings();
    if (typeof settings === "string") {
      this.ui.settingsError.textContent = settings;
      return;
    }
    const systemPrompt = this.ui.systemPrompt.value.trim();
    const conversation = this.current;
    if (conversation.id === null) {
      conversation.settings = settings;
      conversation.systemPrompt = systemPrompt || null;
      this.ui.settingsDialog.close();
      return;
    }
    try {
      // An empty system prompt clears it; null would leave it as it is.
      const info = await this.hub.updateSettings(conversation.id, settings, systemPrompt);
      this.upsertSession(info);
      this.ui.settingsDialog.close();
      toast("success", "Settings saved.");
    } catch (error) {
      this.ui.settingsError.textContent = describe(parseHubError(error));
    }
  }

  // ---- events ----

  private bindEvents(): void {
    const ui = this.ui;
    ui.composer.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.send();
    });
    ui.prompt.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        void this.send();
      } else if (event.key === "Escape" && this.runningHere()) {
        event.preventDefault();
        this.stop();
      }
    });
    ui.prompt.addEventListener("input", () => this.autosize());
    ui.stop.addEventListener("click", () => this.stop());
    ui.newChat.addEventListener("click", () => this.navigate(null));
    ui.openSettings.addEventListener("click", () => this.openSettings());
    ui.settingsCancel.addEventListener("click", () => ui.settingsDialog.close());
    ui.settingsForm.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.saveSettings();
    });
    ui.keyDialog.addEventListener("cancel", (event) => event.preventDefault());
    ui.changeKey.addEventListener("click", () => void this.changeKey());
    ui.openSidebar.addEventListener("click", () => this.openSidebar());
    ui.closeSidebar.addEventListener("click", () => this.closeSidebar());
    ui.scrim.addEventListener("click", () => this.closeSidebar());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && ui.app.classList.contains("sidebar-open")) {
        this.closeSidebar();
      }
    });
    window.addEventListener("hashchange", () => void this.openFromLocation());
  }

  private openSidebar(): void {
    this.ui.app.classList.add("sidebar-open");
    this.ui.scrim.hidden = false;
    this.ui.openSidebar.setAttribute("aria-expanded", "true");
    this.ui.newChat.focus();
  }

  private closeSidebar(): void {
    if (!this.ui.app.classList.contains("sidebar-open")) {
      return;
    }
    this.ui.app.classList.remove("sidebar-open");
    this.ui.scrim.hidden = true;
    this.ui.openSidebar.setAttribute("aria-expanded", "false");
  }
}
