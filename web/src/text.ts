// Text lengths as the server counts them: Unicode scalar values, so an emoji is one character. A browser's
// maxlength counts UTF-16 code units (an emoji is two), so it cannot state the server's limits.

export function characters(text: string): number {
  return Array.from(text).length;
}

/** The first <c>limit</c> characters of a text, never half an emoji. */
export function clip(text: string, limit: number): string {
  return characters(text) > limit ? Array.from(text).slice(0, limit).join("") : text;
}

/** Holds a text box to the server's limit (none while it is not known: the server checks alone). */
export function holdToLimit(input: HTMLInputElement | HTMLTextAreaElement, limit: () => number | undefined): void {
  input.addEventListener("input", () => {
    const max = limit();
    if (max !== undefined && characters(input.value) > max) {
      input.value = clip(input.value, max);
    }
  });
}
