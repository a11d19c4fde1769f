// The connection to the server: the hub's (re)connects, the API key, health and the model's name in the sidebar footer.
import { HubConnectionState } from "@microsoft/signalr";
import { byId } from "./dom";
import { describe, httpStatusOf, isUnauthorized, parseHubError } from "./errors";
import { ChatHub, apiKey } from "./hub";
import { fetchHealth, fetchModelName, type Health } from "./serverStatus";
import { dismissToast, toast } from "./toasts";

const HealthPollMs = 10_000;
const ConnectionToast = "connection";

export interface ConnectionEvents {
  /** Connected, the first time or again after a drop. */
  connected(firstTime: boolean): Promise<void>;
  /** The server may now answer what it could not before (connected, or the model finished loading). */
  serverReady(): void;
}

export class Connection {
  readonly hub = new ChatHub();
  private attempts = 0;
  private everConnected = false;
  private health: Health = "not-ready";
  private modelName: string | null = null;
  private keyPrompt: Promise<void> | null = null;

  private readonly ui = {
    statusDot: byId("status-dot"),
    statusText: byId("status-text"),
    modelName: byId("model-name"),
    changeKey: byId<HTMLButtonElement>("change-key"),
    keyDialog: byId<HTMLDialogElement>("key-dialog"),
    keyForm: byId<HTMLFormElement>("key-form"),
    keyReason: byId("key-reason"),
    keyInput: byId<HTMLInputElement>("api-key"),
  };

  constructor(private readonly events: ConnectionEvents) {}

  get connected(): boolean {
    return this.hub.connected;
  }

  start(): void {
    const connection = this.hub.connection;
    connection.onreconnecting(() => this.onReconnecting());
    connection.onreconnected(() => void this.onConnected());
    connection.onclose((error) => void this.onClosed(error));
    this.ui.keyDialog.addEventListener("cancel", (event) => event.preventDefault());
    this.ui.changeKey.addEventListener("click", () => void this.changeKey());
    this.ui.changeKey.hidden = apiKey.get() === null;
    this.render();
    void this.connect();
    void this.pollHealthOnce();
    void this.pollHealth();
  }

  private async connect(): Promise<void> {
    this.render();
    try {
      await this.hub.start();
    } catch (error) {
      if (isUnauthorized(error)) {
        await this.askForKey(apiKey.get() ? "The server refused this API key." : "This server needs an API key.");
        void this.connect();
        return;
      }
      const delay = Math.min(10_000, 1000 * 2 ** this.attempts++);
      const status = httpStatusOf(error);
      const busy = status === 429 || status === 503;
      toast(busy ? "warning" : "error", busy ? `${describe(parseHubError(error))} Retrying…` : "The server is down or unreachable. Retrying…", {
        key: ConnectionToast,
        timeout: 0,
      });
      this.render();
      window.setTimeout(() => void this.connect(), delay);
      return;
    }
    this.attempts = 0;
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
    this.render();
    void this.pollHealthOnce();
    // The first tries may have lacked the API key.
    if (this.modelName === null) {
      void this.loadModelName();
    }
    this.events.serverReady();
    await this.events.connected(firstTime);
  }

  private onReconnecting(): void {
    this.render();
    toast("warning", "Connection lost. Reconnecting…", { key: ConnectionToast, timeout: 0 });
  }

  private async onClosed(error: Error | undefined): Promise<void> {
    this.render();
    if (isUnauthorized(error)) {
      await this.askForKey("The server refused this API key.");
    }
    void this.connect();
  }

  private render(): void {
    const state = this.hub.connection.state;
    let text: string;
    let level: "ok" | "warn" | "down" | "idle";
    if (state === HubConnectionState.Connected) {
      [text, level] = this.health === "ready" ? ["Connected", "ok"] : ["Connected · model not ready", "warn"];
    } else if (state === HubConnectionState.Reconnecting) {
      [text, level] = ["Reconnecting…", "warn"];
    } else if (this.attempts > 0 || this.everConnected) {
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
    this.render();
    if (this.health === "ready" && before !== "ready") {
      // Neither could be read while the model was loading.
      void this.loadModelName();
      this.events.serverReady();
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
}
