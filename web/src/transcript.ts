// The conversation on screen: title, messages (with the running answer redrawn as it streams), the divider where
// the model's context starts, the per-message actions, and the composer's buttons and live figures.
import { byId, copyText, el, flashLabel } from "./dom";
import type { Generation } from "./generations";
import { renderMarkdown } from "./markdown";
import type { Conversation, ViewMessage } from "./model";

export const ContextDividerText = "Earlier messages are outside the model's context";
export const ReasoningLabel = "Thinking";

export interface OnScreen {
  conversation: Conversation;
  /** The answer running in it, if any. */
  generation: Generation | undefined;
}

export interface TranscriptActions {
  edit(message: ViewMessage, text: string): void;
  /** An edit form was closed without sending. */
  editClosed(): void;
  regenerate(): void;
}

function formatNumber(value: number): string {
  return value.toLocaleString("en-US");
}

/**
 * A reasoning model's thinking above its answer: a collapsible section, open while the answer streams (the person
 * watches it think) and closed once it is done (the answer is what they came for), unless the person opened or
 * closed it otherwise: while the answer runs, that choice outlives a redraw (switching conversations and back); a
 * finished conversation opened again is built anew from the server, its sections closed.
 */
function reasoningSection(message: ViewMessage): HTMLDetailsElement {
  const section = el(
    "details",
    { class: "msg-reasoning" },
    el("summary", { text: ReasoningLabel }),
    el("div", { class: "reasoning-body", text: message.reasoning }),
  );
  section.open = message.reasoningOpen ?? message.streaming;
  // "toggle" also follows the open set above, and may come after a redraw replaced the section: only a change on
  // screen away from the default is a choice.
  section.addEventListener("toggle", () => {
    if (section.isConnected) {
      message.reasoningOpen = section.open === message.streaming ? null : section.open;
    }
  });
  return section;
}

/** The last finished answer's context start: where the divider goes (0 or unknown: everything was seen). */
function contextStartOf(messages: readonly ViewMessage[]): number | null {
  for (let at = messages.length - 1; at >= 0; at--) {
    const message = messages[at]!;
    if (message.role === "assistant" && !message.streaming) {
      return message.contextStart || null;
    }
  }
  return null;
}

export class TranscriptView {
  private readonly nodes = new Map<number, HTMLLIElement>();
  private renderQueued = false;

  private readonly ui = {
    title: byId("chat-title"),
    transcript: byId("transcript"),
    emptyChat: byId("empty-chat"),
    messages: byId<HTMLOListElement>("messages"),
    prompt: byId<HTMLTextAreaElement>("prompt"),
    send: byId<HTMLButtonElement>("send"),
    stop: byId<HTMLButtonElement>("stop"),
    liveStats: byId("live-stats"),
  };

  constructor(
    private readonly onScreen: () => OnScreen,
    private readonly actions: TranscriptActions,
  ) {}

  /** Redraws everything. */
  render(): void {
    const { conversation, generation } = this.onScreen();
    this.nodes.clear();
    const items = conversation.messages.map((message) => {
      const node = el("li", { class: `msg msg-${message.role}`, attrs: { "data-key": String(message.key) } });
      this.nodes.set(message.key, node);
      this.fill(node, message);
      return node;
    });
    this.ui.messages.replaceChildren(...items);
    this.ui.emptyChat.hidden = items.length > 0;
    this.renderTitle();
    this.refresh();
    this.scrollToBottom();
    if (generation) {
      this.renderAnswer(generation);
    }
  }

  /** An edit form is open: redrawing the messages would throw away what is typed in it. */
  get editing(): boolean {
    return this.ui.messages.querySelector(".edit-form") !== null;
  }

  /** Redraws a finished message (its text is final) and what depends on it. */
  renderFinished(message: ViewMessage): void {
    const node = this.nodes.get(message.key);
    if (node) {
      this.fill(node, message);
    }
    this.refresh();
  }

  /** Redraws the running answer at the next frame: many deltas in one frame cost one redraw. */
  queueRender(): void {
    if (this.renderQueued) {
      return;
    }
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      const { generation } = this.onScreen();
      if (generation) {
        this.renderAnswer(generation);
      }
      this.renderComposer();
    });
  }

  renderTitle(): void {
    const { conversation } = this.onScreen();
    const title = conversation.info?.title || (conversation.id ? "Untitled" : "New chat");
    this.ui.title.textContent = title;
    document.title = `${title} · LlmServer`;
  }

  /** Meta lines, buttons, the context divider and the composer depend on what runs and which message is last. */
  refresh(): void {
    const { conversation, generation } = this.onScreen();
    const running = generation !== undefined;
    const messages = conversation.messages;
    messages.forEach((message, position) => {
      const node = this.nodes.get(message.key);
      if (!node) {
        return;
      }
      const actions = node.querySelector(".msg-actions");
      if (!actions) {
        return; // being edited: its form stays as the person left it
      }
      node.querySelector(".msg-body")?.setAttribute("aria-busy", String(message.streaming));
      node.classList.toggle("streaming", message.streaming);
      if (message.role === "user") {
        const edit = this.actionButton("Edit", "Edit and resend this message", () => this.startEdit(node, message));
        edit.disabled = running || message.index === null;
        actions.replaceChildren(edit);
        return;
      }
      const buttons: HTMLButtonElement[] = [];
      if (!message.streaming) {
        node.querySelector(".msg-meta")!.textContent = this.metaText(message);
        const copy = this.actionButton("Copy", "Copy this answer", () => {
          void copyText(message.content).then((ok) => flashLabel(copy, ok ? "Copied" : "Copy failed"));
        });
        buttons.push(copy);
        if (position === messages.length - 1) {
          const again = this.actionButton("Regenerate", "Regenerate this answer", () => this.actions.regenerate());
          again.disabled = running;
          buttons.push(again);
        }
      }
      actions.replaceChildren(...buttons);
    });
    this.placeContextDivider(messages);
    this.renderComposer();
  }

  // ---- the composer ----

  /** The text in the message box, emptied. */
  takePrompt(): string {
    const text = this.ui.prompt.value;
    this.ui.prompt.value = "";
    this.autosize();
    return text;
  }

  /** Puts text back in the message box unless the person has typed something new meanwhile. */
  giveBackPrompt(text: string): void {
    if (this.ui.prompt.value === "") {
      this.ui.prompt.value = text;
      this.autosize();
    }
  }

  focusPrompt(): void {
    this.ui.prompt.focus();
  }

  autosize(): void {
    const prompt = this.ui.prompt;
    prompt.style.height = "auto";
    prompt.style.height = `${Math.min(prompt.scrollHeight, Math.round(window.innerHeight * 0.4))}px`;
  }

  private renderComposer(): void {
    const { generation } = this.onScreen();
    this.ui.send.hidden = generation !== undefined;
    this.ui.stop.hidden = generation === undefined;
    this.ui.stop.disabled = generation?.stopRequested ?? false;
    this.ui.stop.textContent = generation?.stopRequested ? "Stopping…" : "Stop";
    this.renderLiveStats(generation);
  }

  private renderLiveStats(generation: Generation | undefined): void {
    let text = "";
    if (generation) {
      if (generation.firstDeltaAt === null || generation.lastDeltaAt === null) {
        text = generation.interrupted ? "Reconnecting…" : "Waiting for the first token…";
      } else {
        // The rate between the first and the latest token: known from the second token on.
        const seconds = (generation.lastDeltaAt - generation.firstDeltaAt) / 1000;
        const rate = generation.deltas > 1 && seconds > 0 ? ` · ${((generation.deltas - 1) / seconds).toFixed(1)} tok/s` : "";
        text = `Generating · ${formatNumber(generation.deltas)} tokens${rate}`;
      }
    }
    this.ui.liveStats.textContent = text;
  }

  // ---- messages ----

  /** Redraws only the running answer's text, so its live region is not replaced on every frame. */
  private renderAnswer(generation: Generation): void {
    const node = this.nodes.get(generation.message.key);
    const body = node?.querySelector<HTMLElement>(".msg-body");
    if (!node || !body) {
      return;
    }
    const stick = this.nearBottom();
    this.renderReasoning(body, generation.message);
    renderMarkdown(body, generation.message.content, true);
    // The caret sits at the end of the last paragraph or list item, where the next words will appear.
    let tail: Element = body;
    for (let next = body.lastElementChild; next && /^(P|UL|OL|LI|BLOCKQUOTE|H[1-6])$/.test(next.tagName); next = next.lastElementChild) {
      tail = next;
    }
    tail.append(el("span", { class: generation.interrupted ? "reconnecting" : "caret", attrs: { "aria-hidden": "true" } }));
    node.querySelector(".msg-meta")!.textContent = generation.interrupted ? "Reconnecting…" : "";
    if (stick) {
      this.scrollToBottom();
    }
  }

  private fill(node: HTMLLIElement, message: ViewMessage): void {
    const who = el("div", { class: "msg-role", text: message.role === "user" ? "You" : "Assistant" });
    const actions = el("div", { class: "msg-actions" });
    if (message.role === "user") {
      node.replaceChildren(who, el("div", { class: "bubble", text: message.content }), actions);
    } else {
      const body = el("div", {
        class: "msg-body markdown",
        attrs: { "aria-live": "polite", "aria-busy": String(message.streaming), "aria-label": "Answer" },
      });
      renderMarkdown(body, message.content, message.streaming);
      node.replaceChildren(who, ...(message.reasoning ? [reasoningSection(message)] : []), body, el("div", { class: "msg-meta" }), actions);
    }
    node.classList.toggle("streaming", message.streaming);
  }

  /** The running answer's thinking so far, in place: a section the person closed while it streams stays closed. */
  private renderReasoning(body: HTMLElement, message: ViewMessage): void {
    if (message.reasoning === "") {
      return;
    }
    const shown = body.parentElement?.querySelector(":scope > .msg-reasoning > .reasoning-body");
    if (shown) {
      shown.textContent = message.reasoning;
    } else {
      body.before(reasoningSection(message));
    }
  }

  /** A line before the first message the model saw for the latest answer; none when it saw them all. */
  private placeContextDivider(messages: readonly ViewMessage[]): void {
    this.ui.messages.querySelector(":scope > .context-divider")?.remove();
    const start = contextStartOf(messages);
    const first = start === null ? undefined : messages.find((m) => m.index === start);
    const node = first && this.nodes.get(first.key);
    if (node) {
      node.before(el("li", { class: "context-divider", attrs: { role: "separator" } }, el("span", { text: ContextDividerText })));
    }
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
      case "interrupted":
        parts.push("cut short: the server stopped while answering");
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
      this.renderFinished(message);
      this.actions.editClosed();
    };
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (area.value.trim() && !this.onScreen().generation) {
        this.actions.edit(message, area.value);
      }
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

  private nearBottom(): boolean {
    const t = this.ui.transcript;
    return t.scrollHeight - t.scrollTop - t.clientHeight < 80;
  }

  scrollToBottom(): void {
    this.ui.transcript.scrollTop = this.ui.transcript.scrollHeight;
  }
}
