import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/common";
import { Marked } from "marked";
import { copyText, el, flashLabel } from "./dom";

const markdown = new Marked({ gfm: true, breaks: false, async: false });

const HtmlEscapes: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

// Raw HTML in an answer is shown as the text it is, as a chat shows what was written; DOMPurify below still
// guards everything markdown itself produces (links, images).
markdown.use({
  renderer: {
    html({ text }) {
      return text.replace(/[&<>"']/g, (c) => HtmlEscapes[c]!);
    },
  },
});

// Links from a model answer open elsewhere and never hand this page to the target.
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node instanceof HTMLAnchorElement && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer nofollow");
  }
});

const SanitizeOptions = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select"],
  FORBID_ATTR: ["style"],
};

/**
 * Renders markdown into <paramref name="target"/>: parsed, sanitized, code highlighted, copy buttons added.
 * While <c>streaming</c>, code without a language is left plain (auto-detection on every frame is costly).
 */
export function renderMarkdown(target: HTMLElement, text: string, streaming: boolean): void {
  const html = markdown.parse(text) as string;
  target.innerHTML = DOMPurify.sanitize(html, SanitizeOptions);
  for (const code of target.querySelectorAll<HTMLElement>("pre > code")) {
    decorateCodeBlock(code, streaming);
  }
}

function decorateCodeBlock(code: HTMLElement, streaming: boolean): void {
  const pre = code.parentElement!;
  const source = (code.textContent ?? "").replace(/\n$/, ""); // marked ends every block with a newline
  const language = /\blanguage-([\w+#.-]+)/.exec(code.className)?.[1]?.toLowerCase();
  let shownLanguage = language ?? "";
  if (language && hljs.getLanguage(language)) {
    code.innerHTML = hljs.highlight(source, { language, ignoreIllegals: true }).value;
  } else if (!streaming && source.length < 20_000) {
    const guess = hljs.highlightAuto(source);
    code.innerHTML = guess.value;
    shownLanguage = language ?? guess.language ?? "";
  }
  code.classList.add("hljs");

  const copy = el("button", {
    class: "code-copy",
    text: "Copy",
    attrs: { type: "button", "aria-label": `Copy ${shownLanguage || "code"}` },
  });
  copy.addEventListener("click", () => {
    void copyText(source).then((ok) => flashLabel(copy, ok ? "Copied" : "Copy failed"));
  });
  const header = el("div", { class: "code-head" }, el("span", { class: "code-lang", text: shownLanguage || "code" }), copy);
  const block = el("div", { class: "code-block" });
  pre.replaceWith(block);
  block.append(header, pre);
}
