// Access to `qnet ui`: a random token in the printed URL, kept by the page in a cookie; loopback checks.
import { randomBytes, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";

export function newToken(): string {
  return randomBytes(24).toString("base64url");
}

/** The cookie that carries the token (per port: cookies do not tell ports apart). */
export const cookieName = (port: number) => `qnet_ui_${port}`;

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookies(req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return out;
}

/** Where a request's token came from, or null when it has none that matches. */
export function tokenSource(
  req: IncomingMessage,
  url: URL,
  token: string,
  port: number,
): "query" | "header" | "cookie" | null {
  const q = url.searchParams.get("token");
  if (q !== null && sameSecret(q, token)) return "query";
  const auth = req.headers.authorization;
  if (auth?.startsWith("Bearer ") && sameSecret(auth.slice(7).trim(), token)) return "header";
  const c = cookies(req).get(cookieName(port));
  if (c !== undefined && sameSecret(c, token)) return "cookie";
  return null;
}

/**
 * A browser request from another site (a page that guessed the port) carries that site's Origin:
 * refuse it for anything that acts (WebSockets, POST). No Origin: not a browser's cross-site request.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  try {
    return new URL(origin).host === req.headers.host;
  } catch {
    return false;
  }
}

/** Does this listen address keep the server on this machine? */
export function isLoopback(addr: string): boolean {
  if (addr === "localhost") return true;
  const a = addr.replace(/^\[|\]$/g, "");
  if (isIP(a) === 4) return a.startsWith("127.");
  if (isIP(a) === 6) return a === "::1" || /^::ffff:127\./i.test(a);
  return false;
}

/** The host part of a URL for a listen address (IPv6 in brackets). */
export function urlHost(addr: string): string {
  const a = addr.replace(/^\[|\]$/g, "");
  return isIP(a) === 6 ? `[${a}]` : a;
}
