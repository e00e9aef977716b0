// The marker of a qnet running inside a rootless lab's namespaces: the outer qnet (the user's, on the
// host) starts it there with nsenter and passes what it must know in one environment variable.
import type { RootlessPlace } from "../kinds/rootless.js";

export const INSIDE_ENV = "QNET_ROOTLESS_INSIDE";

export interface InsideInfo extends RootlessPlace {
  /** The outer qnet's state root: inside, the user is uid 0, whose default would be /run/qnet. */
  stateRoot: string;
}

/** What the outer qnet passed in, or null when this qnet runs on the host itself. */
export function insideInfo(env: NodeJS.ProcessEnv = process.env): InsideInfo | null {
  const raw = env[INSIDE_ENV];
  if (!raw) return null;
  try {
    const v = JSON.parse(raw) as Partial<InsideInfo>;
    if (typeof v.stateRoot !== "string" || !v.stateRoot.startsWith("/")) return null;
    return {
      stateRoot: v.stateRoot,
      publishedVia: typeof v.publishedVia === "string" ? v.publishedVia : null,
    };
  } catch {
    return null;
  }
}

/** The environment variable that makes a qnet started inside know where it is. */
export function insideEnv(info: InsideInfo): Record<string, string> {
  return { [INSIDE_ENV]: JSON.stringify(info) };
}

/** The plan's view of the place: inside a rootless lab, or null on a host. */
export function rootlessPlace(env: NodeJS.ProcessEnv = process.env): RootlessPlace | null {
  const i = insideInfo(env);
  return i ? { publishedVia: i.publishedVia } : null;
}
