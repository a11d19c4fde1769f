// The conversation list in the sidebar (a drawer on a phone): listing, renaming and deleting sessions.
import type { SessionInfo } from "./contract";
import { byId, el } from "./dom";
import { parseHubError, showError } from "./errors";
import type { ChatHub } from "./hub";
import { Icons, icon } from "./icons";
import { serverLimits } from "./serverStatus";
import { holdToLimit } from "./text";

export interface SessionListEvents {
  /** The session on screen, null for a new chat. */
  currentId(): string | null;
  /** Whether this page is following an answer of the session. */
  answering(id: string): boolean;
  /** The person picked a conversation (null: a new chat). */
  open(id: string | null): void;
  /** A session's info changed here (renamed). */
  changed(info: SessionInfo): void;
  /** A session is gone from the server. */
  deleted(id: string): void;
}

export class SessionList {
  private sessions: SessionInfo[] = [];
  /** A rename box is open: the list renders again once it is answered, not under the user's typing. */
  private renaming = false;

  private readonly ui = {
    app: byId("app"),
    list: byId<HTMLUListElement>("session-list"),
    empty: byId("session-empty"),
    newChat: byId<HTMLButtonElement>("new-chat"),
    openSidebar: byId<HTMLButtonElement>("open-sidebar"),
    closeSidebar: byId<HTMLButtonElement>("close-sidebar"),
    scrim: byId("scrim"),
    confirmDialog: byId<HTMLDialogElement>("confirm-dialog"),
    confirmText: byId("confirm-text"),
  };

  constructor(
    private readonly hub: ChatHub,
    private readonly events: SessionListEvents,
  ) {}

  start(): void {
    const ui = this.ui;
    ui.newChat.addEventListener("click", () => this.events.open(null));
    ui.openSidebar.addEventListener("click", () => this.openDrawer());
    ui.closeSidebar.addEventListener("click", () => this.dismissDrawer());
    ui.scrim.addEventListener("click", () => this.dismissDrawer());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && ui.app.classList.contains("sidebar-open")) {
        this.dismissDrawer();
      }
    });
  }

  async refresh(): Promise<void> {
    try {
      this.sessions = await this.hub.listSessions();
    } catch (error) {
      showError(error);
    }
    this.render();
  }

  /** Adds or replaces a session (a new one goes on top: newest first). */
  upsert(info: SessionInfo): void {
    const at = this.sessions.findIndex((s) => s.id === info.id);
    if (at >= 0) {
      this.sessions[at] = info;
    } else {
      this.sessions.unshift(info);
    }
    this.render();
  }

  remove(id: string): void {
    this.sessions = this.sessions.filter((s) => s.id !== id);
    this.render();
  }

  render(): void {
    if (this.renaming) {
      return;
    }
    const items = this.sessions.map((info) => this.item(info));
    this.ui.list.replaceChildren(...items);
    this.ui.empty.hidden = items.length > 0;
  }

  closeDrawer(): void {
    const ui = this.ui;
    if (!ui.app.classList.contains("sidebar-open")) {
      return;
    }
    ui.app.classList.remove("sidebar-open");
    ui.scrim.hidden = true;
    ui.openSidebar.setAttribute("aria-expanded", "false");
  }

  /** Closed without picking a conversation: focus goes back to the button that opened it, not stay in the hidden drawer. */
  private dismissDrawer(): void {
    if (this.ui.app.classList.contains("sidebar-open")) {
      this.closeDrawer();
      this.ui.openSidebar.focus();
    }
  }

  private openDrawer(): void {
    const ui = this.ui;
    ui.app.classList.add("sidebar-open");
    ui.scrim.hidden = false;
    ui.openSidebar.setAttribute("aria-expanded", "true");
    ui.newChat.focus();
  }

  private item(info: SessionInfo): HTMLLIElement {
    const title = info.title || "Untitled";
    const active = info.id === this.events.currentId();
    const busy = this.events.answering(info.id) || info.generating;
    const open = el(
      "button",
      { class: "session-open", attrs: { type: "button", title } },
      el("span", { class: "session-title", text: title }),
      busy ? el("span", { class: "session-busy", attrs: { role: "img", "aria-label": "answering" } }) : null,
    );
    if (active) {
      open.setAttribute("aria-current", "page");
    }
    open.addEventListener("click", () => this.events.open(info.id));
    const item = el("li", { class: active ? "session active" : "session", attrs: { "data-session-id": info.id } });
    const rename = el(
      "button",
      { class: "icon-button session-action", attrs: { type: "button", "aria-label": `Rename “${title}”`, title: "Rename" } },
      icon(Icons.pencil),
    );
    rename.addEventListener("click", () => void this.rename(item, info));
    const remove = el(
      "button",
      { class: "icon-button session-action", attrs: { type: "button", "aria-label": `Delete “${title}”`, title: "Delete" } },
      icon(Icons.trash),
    );
    remove.addEventListener("click", () => void this.confirmDelete(info));
    item.append(open, rename, remove);
    return item;
  }

  private async rename(item: HTMLLIElement, info: SessionInfo): Promise<void> {
    const input = el("input", {
      class: "rename-input",
      attrs: { type: "text", "aria-label": "Conversation title" },
    });
    holdToLimit(input, () => serverLimits.current?.title_length);
    input.value = info.title;
    item.replaceChildren(input);
    this.renaming = true;
    input.focus();
    input.select();
    // Ended from the keyboard, focus goes back to the conversation's button (the box is gone); a click elsewhere keeps its own.
    let byKey = false;
    const title = await new Promise<string | null>((resolve) => {
      input.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === "Escape") {
          event.preventDefault();
          // Escape ends the renaming only; the phone drawer around it stays open.
          event.stopPropagation();
          byKey = true;
          resolve(event.key === "Enter" ? input.value.trim() : null);
        }
      });
      input.addEventListener("blur", () => resolve(input.value.trim()));
    });
    this.renaming = false;
    if (title && title !== info.title) {
      try {
        const renamed = await this.hub.renameSession(info.id, title);
        this.upsert(renamed);
        this.events.changed(renamed);
      } catch (error) {
        showError(error);
      }
    }
    this.render();
    if (byKey) {
      this.ui.list.querySelector<HTMLButtonElement>(`li[data-session-id="${CSS.escape(info.id)}"] .session-open`)?.focus();
    }
  }

  private async confirmDelete(info: SessionInfo): Promise<void> {
    const { confirmDialog, confirmText } = this.ui;
    confirmText.textContent = `Delete “${info.title || "Untitled"}”? This cannot be undone.`;
    confirmDialog.returnValue = "";
    confirmDialog.showModal();
    await new Promise((resolve) => confirmDialog.addEventListener("close", resolve, { once: true }));
    if (confirmDialog.returnValue !== "ok") {
      return;
    }
    if (await this.delete(info.id, true)) {
      this.events.deleted(info.id);
    }
  }

  /** Deletes a session on the server and from the list; false (after telling the person, if asked) when it could not. */
  async delete(id: string, reportFailure: boolean): Promise<boolean> {
    try {
      await this.hub.deleteSession(id);
    } catch (error) {
      if (parseHubError(error).code !== "session_not_found") {
        if (reportFailure) {
          showError(error);
        }
        return false;
      }
    }
    this.remove(id);
    return true;
  }
}
