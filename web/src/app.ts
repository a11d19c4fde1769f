// The chat page: which conversation is on screen, how it is opened and kept in step with the server, and what
// sending, regenerating and editing do. The parts it wires together live in their own modules.
import type { SessionDetail, SessionInfo, SessionSettings } from "./contract";
import { byId } from "./dom";
import { Connection } from "./connection";
import { describe, parseHubError, showError } from "./errors";
import { Generations, type Generation, type Subscribe } from "./generations";
import { draftConversation, draftSettings, fromServer, newMessage, type Conversation, type ViewMessage } from "./model";
import { serverLimits } from "./serverStatus";
import { SessionList } from "./sessionList";
import { SettingsDialog } from "./settings";
import { characters, clip } from "./text";
import { toast } from "./toasts";
import { TranscriptView } from "./transcript";

/** A first message's title is at most this long (shorter where the server allows less). */
const TitleLength = 48;

function titleFrom(text: string): string {
  const length = Math.min(TitleLength, serverLimits.current?.title_length ?? TitleLength);
  const line = text.trim().split("\n")[0]!.replace(/\s+/g, " ");
  if (characters(line) <= length) {
    return line;
  }
  return `${clip(line, length - 1)}…`;
}

function sessionIdFromLocation(): string | null {
  const match = /^#\/c\/(.+)$/.exec(location.hash);
  return match ? decodeURIComponent(match[1]!) : null;
}

function locationOf(id: string | null): string {
  return id ? `#/c/${encodeURIComponent(id)}` : "#/";
}

export class ChatApp {
  /** The conversation on screen: a stored session, or a new chat (a draft until its first message). */
  private current: Conversation = draftConversation();
  /** Bumped whenever another conversation is opened: a slower load of an earlier one is dropped. */
  private openToken = 0;
  /** Tokens per second of finished answers, by "session:index"; the server does not store speeds. */
  private readonly speeds = new Map<string, number>();
  /**
   * Per session, bumped when an answer starts and whenever a server copy is applied: a reply to an earlier
   * GetSession (a slow focus sync) is older than what is on screen then, and is dropped.
   */
  private readonly syncVersions = new Map<string, number>();
  /** The focus or reconnect sync in flight: a tab switch fires focus and visibilitychange, one sync serves both. */
  private syncInFlight: { id: string; done: Promise<void> } | null = null;
  /** A sync came while an edit form was open: it runs once the form closes, so the typed text is not thrown away. */
  private syncAfterEdit = false;

  private readonly connection = new Connection({
    connected: (firstTime) => this.onConnected(firstTime),
    serverReady: () => void this.settings.loadLimits(),
  });
  private readonly hub = this.connection.hub;
  private readonly sessions = new SessionList(this.hub, {
    currentId: () => this.current.id,
    answering: (id) => this.generations.of(id) !== undefined,
    open: (id) => this.navigate(id),
    changed: (info) => this.showInfo(info),
    deleted: (id) => {
      this.generations.forget(id);
      if (this.current.id === id) {
        this.navigate(null);
      }
    },
  });
  private readonly generations = new Generations(this.hub, {
    started: (generation) => {
      this.bumpSync(generation.sessionId);
      if (generation.conversation === this.current) {
        this.view.render();
      }
      this.sessions.render();
    },
    changed: (generation) => {
      if (generation.conversation === this.current) {
        this.view.queueRender();
      }
    },
    ended: (generation) => this.onEnded(generation),
    sessionGone: (generation) => {
      this.sessions.remove(generation.sessionId);
      if (generation.conversation === this.current) {
        this.navigate(null);
      }
    },
  });
  private readonly view = new TranscriptView(() => ({ conversation: this.current, generation: this.running }), {
    edit: (message, text) => this.resendEdited(message, text),
    editClosed: () => {
      if (this.syncAfterEdit) {
        void this.syncCurrent();
      }
    },
    regenerate: () => this.regenerate(),
  });
  private readonly settings = new SettingsDialog(
    () => this.current,
    (conversation, systemPrompt, settings) => this.saveSettings(conversation, systemPrompt, settings),
  );

  /** The answer running in the conversation on screen. */
  private get running(): Generation | undefined {
    return this.generations.of(this.current.id);
  }

  start(): void {
    this.bindComposer();
    this.sessions.start();
    this.settings.start();
    window.addEventListener("hashchange", () => void this.openFromLocation());
    // Another tab (or client) may have changed the conversation meanwhile: show its copy when the person comes back.
    window.addEventListener("focus", () => void this.syncCurrent());
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden) {
        void this.syncCurrent();
      }
    });
    this.view.render();
    this.connection.start();
  }

  private bindComposer(): void {
    const composer = byId<HTMLFormElement>("composer");
    const prompt = byId<HTMLTextAreaElement>("prompt");
    composer.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.send();
    });
    prompt.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        void this.send();
      } else if (event.key === "Escape" && this.running) {
        event.preventDefault();
        this.stop();
      }
    });
    prompt.addEventListener("input", () => this.view.autosize());
    byId<HTMLButtonElement>("stop").addEventListener("click", () => this.stop());
  }

  private async onConnected(firstTime: boolean): Promise<void> {
    await this.sessions.refresh();
    this.generations.resumeInterrupted();
    if (firstTime) {
      await this.openFromLocation();
    } else {
      // It may have finished, or been changed elsewhere, while we were away.
      await this.syncCurrent();
    }
  }

  /** Brings the conversation on screen up to the server's copy (unless this page is following its answer). */
  private syncCurrent(): Promise<void> {
    if (!this.current.id || this.running || !this.connection.connected) {
      return Promise.resolve();
    }
    const id = this.current.id;
    if (this.syncInFlight?.id !== id) {
      const sync = {
        id,
        done: this.syncSession(id, null).finally(() => {
          if (this.syncInFlight === sync) {
            this.syncInFlight = null;
          }
        }),
      };
      this.syncInFlight = sync;
    }
    return this.syncInFlight.done;
  }

  private bumpSync(id: string): void {
    this.syncVersions.set(id, (this.syncVersions.get(id) ?? 0) + 1);
  }

  // ---- which conversation is on screen ----

  private navigate(id: string | null): void {
    const hash = locationOf(id);
    if (location.hash !== hash) {
      location.hash = hash;
    } else {
      void this.openFromLocation();
    }
    this.sessions.closeDrawer();
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
    if (this.current.id !== null || this.current.messages.length > 0) {
      this.current = draftConversation();
    }
    this.view.render();
    this.sessions.render();
    this.view.focusPrompt();
  }

  private async openSession(id: string): Promise<void> {
    const token = ++this.openToken;
    const running = this.generations.of(id);
    if (running) {
      this.current = running.conversation;
      this.view.render();
      this.sessions.render();
      return;
    }
    let detail: SessionDetail;
    try {
      detail = await this.hub.getSession(id);
    } catch (error) {
      if (token === this.openToken) {
        showError(error);
        if (parseHubError(error).code === "session_not_found") {
          this.sessions.remove(id);
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
    this.bumpSync(id);
    this.applyDetail(conversation, detail);
    this.showInfo(detail.info);
    this.view.render();
    this.followRunning(conversation, detail.info);
  }

  /** An answer running on the server that this page does not follow (another tab's, or from before a reload): follow it. */
  private followRunning(conversation: Conversation, info: SessionInfo): void {
    const id = info.id;
    if (info.generating && !this.generations.of(id)) {
      const answer = newMessage("assistant", "");
      conversation.messages.push(answer);
      this.generations.run(conversation, answer, (observer) => this.hub.resumeStream(id, 0, observer));
    }
  }

  /** A session's info as the server returned it: into the list, and onto the screen when it is this one. */
  private showInfo(info: SessionInfo): void {
    this.sessions.upsert(info);
    if (this.current.id === info.id) {
      this.current.info = info;
      this.current.systemPrompt = info.systemPrompt ?? null;
      this.current.settings = info.settings ?? {};
      this.view.renderTitle();
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
      conversation.messages.every(
        (m, i) => m.role === incoming[i]!.role && m.content === incoming[i]!.content && m.reasoning === incoming[i]!.reasoning,
      );
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
        m.contextStart = fresh.contextStart;
        m.tokensPerSecond = fresh.tokensPerSecond ?? m.tokensPerSecond;
      });
      if (conversation === this.current) {
        this.view.refresh();
      }
    } else {
      conversation.messages = incoming;
      if (conversation === this.current) {
        this.view.render();
      }
    }
  }

  /**
   * Reloads one session after its answer ended (<c>finished</c>), or on focus or reconnect (null); gives back text the
   * server did not keep.
   */
  private async syncSession(id: string, finished: Generation | null): Promise<void> {
    const version = this.syncVersions.get(id) ?? 0;
    let detail: SessionDetail;
    try {
      detail = await this.hub.getSession(id);
    } catch (error) {
      if (parseHubError(error).code === "session_not_found") {
        this.sessions.remove(id);
        // Deleted elsewhere before the message reached it: the text is not lost.
        if (finished?.sentText) {
          this.view.giveBackPrompt(finished.sentText);
        } else if (finished === null && this.current.id === id) {
          // Deleted elsewhere while this tab was away: it cannot stay on screen.
          showError(error);
          this.navigate(null);
        }
      }
      return;
    }
    const lastAssistant = detail.messages.filter((m) => m.role === "assistant").at(-1);
    if (finished?.message.tokensPerSecond && lastAssistant) {
      this.speeds.set(`${id}:${lastAssistant.index}`, finished.message.tokensPerSecond);
    }
    // Something newer (an answer that started, or a later copy) is on screen already.
    const stale = (this.syncVersions.get(id) ?? 0) !== version;
    if (!stale) {
      if (finished?.firstOfSession && detail.messages.length === 0 && !detail.info.generating) {
        await this.undoNewSession(finished);
        return;
      }
      this.applyServerCopy(id, detail, finished);
    }
    void this.sessions.refresh();

    const sent = finished?.sentText;
    if (sent && !detail.messages.some((m) => m.role === "user" && m.content === sent)) {
      this.view.giveBackPrompt(sent);
    }
  }

  /** A fresh server copy onto the screen (unless an edit form is open there), and into the list. */
  private applyServerCopy(id: string, detail: SessionDetail, finished: Generation | null): void {
    const conversation = finished?.conversation ?? (this.current.id === id ? this.current : null);
    if (conversation === this.current && this.view.editing) {
      this.syncAfterEdit = true;
      this.showInfo(detail.info);
      return;
    }
    if (conversation === this.current) {
      this.syncAfterEdit = false;
    }
    if (conversation && !this.generations.of(id)) {
      this.bumpSync(id);
      this.applyDetail(conversation, detail);
      // Only a sync on focus or reconnect follows an answer running elsewhere. After this page's own answer ended,
      // a session still "generating" (its turn on another replica, or a final save that failed and holds the turn)
      // would otherwise be followed again at once, and again, with no pause.
      if (finished === null && conversation === this.current) {
        this.followRunning(conversation, detail.info);
      }
    }
    this.showInfo(detail.info);
  }

  /**
   * The server refused a new chat's first message and kept nothing: the session the page made for it goes, and
   * the chat is a new chat again, with its settings and the text in the box.
   */
  private async undoNewSession(finished: Generation): Promise<void> {
    const conversation = finished.conversation;
    if (!(await this.sessions.delete(finished.sessionId, false))) {
      return; // it stays in the list, as the server still has it
    }
    conversation.id = null;
    conversation.info = null;
    conversation.messages = [];
    draftSettings.save(conversation);
    if (conversation === this.current) {
      history.replaceState(null, "", locationOf(null));
      this.view.render();
      this.sessions.render();
    }
    if (finished.sentText) {
      this.view.giveBackPrompt(finished.sentText);
    }
  }

  private async saveSettings(conversation: Conversation, systemPrompt: string, settings: SessionSettings): Promise<string | null> {
    if (conversation.id === null) {
      conversation.settings = settings;
      conversation.systemPrompt = systemPrompt || null;
      draftSettings.save(conversation);
      return null;
    }
    try {
      // An empty system prompt clears it; null would leave it as it is.
      this.showInfo(await this.hub.updateSettings(conversation.id, settings, systemPrompt));
      toast("success", "Settings saved.");
      return null;
    } catch (error) {
      return describe(parseHubError(error));
    }
  }

  // ---- sending ----

  private async send(): Promise<void> {
    const conversation = this.current;
    const text = byId<HTMLTextAreaElement>("prompt").value;
    if (!text.trim() || this.running) {
      return;
    }
    if (!this.connection.connected) {
      toast("warning", "Not connected to the server. Your message stays in the box; send it once connected.");
      return;
    }
    this.view.takePrompt();
    const firstOfSession = conversation.id === null;
    if (firstOfSession) {
      let info: SessionInfo;
      try {
        info = await this.hub.createSession({
          title: titleFrom(text),
          systemPrompt: conversation.systemPrompt,
          settings: conversation.settings,
        });
      } catch (error) {
        this.view.giveBackPrompt(text);
        showError(error);
        return;
      }
      conversation.id = info.id;
      conversation.info = info;
      draftSettings.clear();
      this.showInfo(info);
      if (conversation === this.current) {
        history.replaceState(null, "", locationOf(info.id));
      }
    }
    const sessionId = conversation.id!;
    this.answer(conversation, newMessage("user", text), (observer) => this.hub.sendMessage(sessionId, text, observer), {
      sentText: text,
      firstOfSession,
    });
  }

  private regenerate(): void {
    const conversation = this.current;
    const sessionId = conversation.id;
    if (sessionId === null || this.running || conversation.messages.at(-1)?.role !== "assistant") {
      return;
    }
    conversation.messages.pop();
    this.answer(conversation, null, (observer) => this.hub.regenerate(sessionId, observer));
  }

  private resendEdited(message: ViewMessage, text: string): void {
    const conversation = this.current;
    const sessionId = conversation.id;
    const at = conversation.messages.indexOf(message);
    const index = message.index;
    if (sessionId === null || this.running || at < 0 || index === null || !text.trim()) {
      return;
    }
    conversation.messages.splice(at + 1);
    message.content = text;
    this.answer(conversation, null, (observer) => this.hub.editMessage(sessionId, index, text, observer));
  }

  /** Adds the user's message (if new) and an empty answer to the conversation, and streams the answer into it. */
  private answer(
    conversation: Conversation,
    userMessage: ViewMessage | null,
    subscribe: Subscribe,
    options: { sentText?: string; firstOfSession?: boolean } = {},
  ): void {
    const answer = newMessage("assistant", "");
    conversation.messages.push(...(userMessage ? [userMessage] : []), answer);
    this.generations.run(conversation, answer, subscribe, options);
  }

  private stop(): void {
    const generation = this.running;
    if (generation) {
      this.generations.stop(generation);
    }
  }

  private onEnded(generation: Generation): void {
    if (generation.conversation === this.current) {
      if (this.current.messages.includes(generation.message)) {
        this.view.renderFinished(generation.message);
      } else {
        this.view.render(); // refused before anything came: its empty answer is gone
      }
    }
    this.sessions.render();
    void this.syncSession(generation.sessionId, generation);
  }
}
