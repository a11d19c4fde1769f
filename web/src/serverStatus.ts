import { authHeaders } from "./hub";

/** The served model's name: from the OpenAI-style model list, else llama-server style /props; null if neither answers. */
export async function fetchModelName(signal: AbortSignal): Promise<string | null> {
  try {
    const models = await fetch("/v1/models", { headers: authHeaders(), signal });
    if (models.ok) {
      const body = (await models.json()) as { data?: { id?: string }[] };
      const id = body.data?.[0]?.id;
      if (id) {
        return id;
      }
    }
    const props = await fetch("/props", { headers: authHeaders(), signal });
    if (props.ok) {
      const body = (await props.json()) as { model_alias?: string; model_path?: string; model?: { id?: string; name?: string } };
      const name = body.model?.id ?? body.model?.name ?? body.model_alias ?? body.model_path;
      if (name) {
        return name.split(/[\\/]/).pop() ?? name;
      }
    }
  } catch (error) {
    if (signal.aborted) {
      throw error;
    }
  }
  return null;
}

export type Health = "ready" | "not-ready" | "down";

/** /health: 200 ready, 503 loading or draining, no answer: down. */
export async function fetchHealth(signal: AbortSignal): Promise<Health> {
  try {
    const response = await fetch("/health", { cache: "no-store", headers: authHeaders(), signal });
    return response.ok ? "ready" : "not-ready";
  } catch {
    return "down";
  }
}

/** A range as /props states it (JSON Schema's words); an absent end is open. */
export interface Range {
  minimum?: number;
  exclusive_minimum?: number;
  maximum?: number;
}

/** What the server accepts, from /props ("limits"): the engine's sampling ranges and the sessions' text lengths. */
export interface ServerLimits {
  temperature?: Range;
  top_p?: Range;
  max_tokens?: Range;
  /** Longest title, message and system prompt, in characters as the server counts them (text.ts). */
  title_length?: number;
  message_length?: number;
  system_prompt_length?: number;
}

async function fetchLimits(signal: AbortSignal): Promise<ServerLimits | null> {
  try {
    const props = await fetch("/props", { headers: authHeaders(), signal });
    return props.ok ? (((await props.json()) as { limits?: ServerLimits }).limits ?? null) : null;
  } catch {
    return null;
  }
}

/** The server's limits, read once it can answer (the model may still be loading); null until then. */
export const serverLimits = {
  current: null as ServerLimits | null,
  /** Reads them unless already known; true when they are known now. */
  async load(): Promise<boolean> {
    serverLimits.current ??= await fetchLimits(AbortSignal.timeout(10_000));
    return serverLimits.current !== null;
  },
};
