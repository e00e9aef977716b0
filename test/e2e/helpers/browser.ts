// A real browser for web view tests and benchmarks: Debian's Chromium driven by playwright-core (never downloaded).
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { type BrowserContext, chromium } from "playwright-core";
import { REPO_ROOT } from "../../helpers/golden.js";
import { CLI } from "../../helpers/topology.js";

export const CHROMIUM = process.env.QNET_CHROMIUM ?? "/usr/bin/chromium";

/** Where tests leave screenshots (gitignored). */
export const ARTIFACTS = join(REPO_ROOT, "test-artifacts", "ui");

export interface Browser {
  context: BrowserContext;
  close(): Promise<void>;
}

/**
 * Chromium with a fresh profile, headless. As root it needs --no-sandbox; the rest keeps it from
 * reaching for the network (updates, sync, QUIC) on a machine that has none.
 */
export async function launchBrowser(viewport = { width: 1400, height: 900 }): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), "qnet-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    args: [
      "--no-sandbox",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
      "--disable-gpu",
    ],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export function screenshotPath(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, `${name}.png`);
}

export interface UiProcess {
  child: ChildProcess;
  url: string;
  origin: string;
  token: string;
  stderr: () => string;
  /** Resolves with the exit code (or signal) when the process ends. */
  exited: Promise<number | string | null>;
}

/** Start `qnet ui ARGS` (optionally through a prefix such as `ip netns exec NS`) and read its URL line. */
export async function startUi(args: string[], prefix: string[] = []): Promise<UiProcess> {
  const argv = [...prefix, process.execPath, CLI, "ui", ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d) => {
    err += d;
  });
  const exited = new Promise<number | string | null>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal)),
  );
  const lines = createInterface({ input: child.stdout! });
  const first = await Promise.race([
    new Promise<string>((resolve) => lines.once("line", resolve)),
    exited.then((c) => {
      throw new Error(`qnet ui exited (${c}) before printing its URL:\n${err}`);
    }),
    new Promise<never>((_, reject) =>
      setTimeout(
        () => reject(new Error(`qnet ui printed no URL in 20 s:\n${err}`)),
        20_000,
      ).unref(),
    ),
  ]);
  const url = new URL(first);
  return {
    child,
    url: first,
    origin: url.origin,
    token: url.searchParams.get("token") ?? "",
    stderr: () => err,
    exited,
  };
}
