// The page's side of the server's API: JSON requests and WebSocket URLs, carrying the access token.
const token = new URLSearchParams(location.search).get("token");

function headers(): HeadersInit {
  return token ? { authorization: `Bearer ${token}` } : {};
}

export async function getJson<T>(path: string): Promise<T> {
  const r = await fetch(path, { headers: headers() });
  if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

/** POST; a refusal with `{ error }` becomes an Error carrying that message. */
export async function postJson<T>(path: string): Promise<T> {
  const r = await fetch(path, { method: "POST", headers: headers() });
  const body = (await r.json().catch(() => ({}))) as { error?: string };
  if (!r.ok) throw new Error(body.error ?? `${path}: ${r.status}`);
  return body as T;
}

/** A WebSocket to the server (the cookie carries the token; the query too, for browsers without it). */
export function socket(path: string): WebSocket {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const q = token ? `?token=${encodeURIComponent(token)}` : "";
  return new WebSocket(`${proto}//${location.host}${path}${q}`);
}

export const labPath = (lab: string) => `/api/labs/${encodeURIComponent(lab)}`;
export const labSocket = (lab: string) => `/ws/labs/${encodeURIComponent(lab)}`;

/** An element with text, for building the DOM without innerHTML (names come from topology files). */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
}
