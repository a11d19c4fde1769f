import { byId, el } from "./dom";

export type ToastKind = "error" | "warning" | "info" | "success";

export interface Toast {
  dismiss(): void;
}

interface ToastOptions {
  /** Milliseconds before it goes by itself; 0 keeps it until dismissed. */
  timeout?: number;
  /** A toast with the same key replaces the previous one (one "reconnecting" message, not ten). */
  key?: string;
}

const open = new Map<string, HTMLElement>();

/** A non-blocking message in the corner: errors are announced at once, the rest politely. */
export function toast(kind: ToastKind, message: string, options: ToastOptions = {}): Toast {
  const region = byId("toasts");
  if (options.key) {
    open.get(options.key)?.remove();
  }
  const close = el("button", { class: "toast-close", text: "×", attrs: { type: "button", "aria-label": "Dismiss" } });
  const node = el(
    "div",
    { class: `toast toast-${kind}`, attrs: { role: kind === "error" ? "alert" : "status" } },
    el("span", { class: "toast-text", text: message }),
    close,
  );
  const dismiss = (): void => {
    node.remove();
    if (options.key && open.get(options.key) === node) {
      open.delete(options.key);
    }
  };
  close.addEventListener("click", dismiss);
  region.append(node);
  if (options.key) {
    open.set(options.key, node);
  }
  const timeout = options.timeout ?? (kind === "error" ? 8000 : 4000);
  if (timeout > 0) {
    window.setTimeout(dismiss, timeout);
  }
  return { dismiss };
}

export function dismissToast(key: string): void {
  open.get(key)?.remove();
  open.delete(key);
}
