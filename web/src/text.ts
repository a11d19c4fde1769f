// Text lengths as the server counts them: Unicode scalar values (code points). A browser's maxlength counts UTF-16
// code units, so it cannot state the server's limits. An emoji made of one code point counts one; one built from
// several (a flag, a skin tone, a family joined with ZWJ) counts as many as it has.

export function characters(text: string): number {
  return Array.from(text).length;
}

const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/** At most the first <c>limit</c> characters of a text, cut where a character as a person sees it ends. */
export function clip(text: string, limit: number): string {
  if (characters(text) <= limit) {
    return text;
  }
  let kept = "";
  let count = 0;
  for (const { segment } of graphemes.segment(text)) {
    count += characters(segment);
    if (count > limit) {
      break;
    }
    kept += segment;
  }
  return kept;
}

/**
 * Holds a text box to the server's limit (none while it is not known: the server checks alone). What goes is the
 * end of what was just typed or pasted (it ends at the caret), not the end of the text, and the caret stays where
 * the insertion left it. Nothing is changed while an input method is composing: that would break the composition;
 * the text is held once it ends.
 */
export function holdToLimit(input: HTMLInputElement | HTMLTextAreaElement, limit: () => number | undefined): void {
  const hold = (): void => {
    const max = limit();
    const excess = max === undefined ? 0 : characters(input.value) - max;
    if (excess <= 0) {
      return;
    }
    const caret = input.selectionEnd ?? input.value.length;
    const typed = Array.from(input.value.slice(0, caret));
    const before = typed.slice(0, Math.max(0, typed.length - excess)).join("");
    // Only when more than the text before the caret is over (the limit shrank): the rest is cut from the end.
    const after = clip(input.value.slice(caret), max! - characters(before));
    input.value = before + after;
    input.setSelectionRange(before.length, before.length);
  };
  input.addEventListener("input", (event) => {
    if (!(event as InputEvent).isComposing) {
      hold();
    }
  });
  input.addEventListener("compositionend", hold);
}
