// The conversation settings dialog: system prompt and sampling, checked against the limits the server publishes.
import type { SessionSettings } from "./contract";
import { byId } from "./dom";
import type { Conversation } from "./model";
import { serverLimits, type Range } from "./serverStatus";
import { holdToLimit } from "./text";

/** Saves what the dialog holds; resolves to an error to show, or null when saved. */
export type SaveSettings = (conversation: Conversation, systemPrompt: string, settings: SessionSettings) => Promise<string | null>;

function describeRange(range: Range): string {
  const min = range.minimum ?? range.exclusive_minimum;
  const above = range.exclusive_minimum !== undefined;
  if (min !== undefined && range.maximum !== undefined) {
    return above ? `above ${min} and at most ${range.maximum}` : `between ${min} and ${range.maximum}`;
  }
  if (min !== undefined) {
    return above ? `above ${min}` : `at least ${min}`;
  }
  return range.maximum !== undefined ? `at most ${range.maximum}` : "any number";
}

function inRange(value: number, range: Range | undefined): boolean {
  return (
    Number.isFinite(value) &&
    (range?.minimum === undefined || value >= range.minimum) &&
    (range?.exclusive_minimum === undefined || value > range.exclusive_minimum) &&
    (range?.maximum === undefined || value <= range.maximum)
  );
}

/** What is wrong with a field's value, or null (empty is the server's default; unknown limits: the server checks). */
function problemWith(label: string, value: number | null, range: Range | undefined, whole = false): string | null {
  if (value === null || (inRange(value, range) && (!whole || Number.isInteger(value)))) {
    return null;
  }
  const kind = whole ? "a whole number" : "a number";
  return range ? `${label} must be ${whole ? `${kind}, ` : ""}${describeRange(range)}.` : `${label} must be ${kind}.`;
}

/** Lets the browser's own number field show the range (and step over it) too. */
function applyRange(input: HTMLInputElement, range: Range | undefined): void {
  const min = range?.minimum ?? range?.exclusive_minimum;
  if (min === undefined) {
    input.removeAttribute("min");
  } else {
    input.min = String(min);
  }
  if (range?.maximum === undefined) {
    input.removeAttribute("max");
  } else {
    input.max = String(range.maximum);
  }
}

export class SettingsDialog {
  private rangesShown = false;
  private editing: Conversation | null = null;

  private readonly ui = {
    open: byId<HTMLButtonElement>("open-settings"),
    dialog: byId<HTMLDialogElement>("settings-dialog"),
    form: byId<HTMLFormElement>("settings-form"),
    cancel: byId<HTMLButtonElement>("settings-cancel"),
    error: byId("settings-error"),
    systemPrompt: byId<HTMLTextAreaElement>("system-prompt"),
    temperature: byId<HTMLInputElement>("temperature"),
    topP: byId<HTMLInputElement>("top-p"),
    maxTokens: byId<HTMLInputElement>("max-tokens"),
  };

  constructor(
    private readonly current: () => Conversation,
    private readonly save: SaveSettings,
  ) {}

  start(): void {
    const ui = this.ui;
    ui.open.addEventListener("click", () => this.open());
    holdToLimit(ui.systemPrompt, () => serverLimits.current?.system_prompt_length);
    ui.cancel.addEventListener("click", () => ui.dialog.close());
    ui.form.addEventListener("submit", (event) => {
      event.preventDefault();
      void this.submit();
    });
  }

  /** Reads the server's limits once it can answer (the model may still be loading). */
  async loadLimits(): Promise<void> {
    if (this.rangesShown || !(await serverLimits.load())) {
      return;
    }
    this.rangesShown = true;
    const limits = serverLimits.current;
    applyRange(this.ui.temperature, limits?.temperature);
    applyRange(this.ui.topP, limits?.top_p);
    applyRange(this.ui.maxTokens, limits?.max_tokens);
  }

  private open(): void {
    const { systemPrompt, temperature, topP, maxTokens, error, dialog } = this.ui;
    const conversation = this.current();
    this.editing = conversation;
    const settings = conversation.settings;
    systemPrompt.value = conversation.systemPrompt ?? "";
    temperature.value = settings.temperature?.toString() ?? "";
    topP.value = settings.topP?.toString() ?? "";
    maxTokens.value = settings.maxTokens?.toString() ?? "";
    error.textContent = "";
    dialog.showModal();
    systemPrompt.focus();
  }

  /** The settings in the form, or what is wrong with them. */
  private read(conversation: Conversation): SessionSettings | string {
    const number = (input: HTMLInputElement): number | null => (input.value.trim() === "" ? null : Number(input.value));
    const limits = serverLimits.current ?? {};
    const temperature = number(this.ui.temperature);
    const topP = number(this.ui.topP);
    const maxTokens = number(this.ui.maxTokens);
    const problem =
      problemWith("Temperature", temperature, limits.temperature) ??
      problemWith("Top p", topP, limits.top_p) ??
      problemWith("Max tokens", maxTokens, limits.max_tokens, true);
    if (problem !== null) {
      return problem;
    }
    // Seed has no field here; keep whatever the session has.
    return { temperature, topP, maxTokens, seed: conversation.settings.seed ?? null };
  }

  private async submit(): Promise<void> {
    const conversation = this.editing ?? this.current();
    const settings = this.read(conversation);
    if (typeof settings === "string") {
      this.ui.error.textContent = settings;
      return;
    }
    const failure = await this.save(conversation, this.ui.systemPrompt.value.trim(), settings);
    if (failure === null) {
      this.ui.dialog.close();
    } else {
      this.ui.error.textContent = failure;
    }
  }
}
