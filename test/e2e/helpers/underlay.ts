// Several "hosts" on one machine: a network namespace each, joined through an "underlay" namespace (a
// bridge) by veths, each host's end holding its underlay address. Everything stays inside namespaces.
import { spawn } from "node:child_process";
import { CLI } from "../../helpers/topology.js";
import { sleepMs } from "./host-state.js";
import { addNetns, delNetns, sh } from "./netns.js";

export interface Underlay {
  /** The namespace of host i (1-based). */
  host: (i: number) => string;
  underlay: string;
  cleanup: () => void;
}

/** `n` host namespaces with `10.200.0.i/24` on their `ul0`, bridged in `<prefix>-ul`. */
export function makeUnderlay(prefix: string, n: number, mtu = 1500): Underlay {
  const underlay = `${prefix}-ul`;
  const host = (i: number) => `${prefix}-h${i}`;
  const cleanup = () => {
    for (let i = 1; i <= n; i++) delNetns(host(i));
    delNetns(underlay);
  };
  try {
    addNetns(underlay);
    sh(["ip", "-n", underlay, "link", "add", "ul", "type", "bridge"]);
    sh(["ip", "-n", underlay, "link", "set", "ul", "up"]);
    for (let i = 1; i <= n; i++) {
      addNetns(host(i));
      sh(
        ["ip", "-n", host(i), "link", "add", "ul0", "mtu", String(mtu), "type", "veth"].concat([
          "peer",
          "name",
          `h${i}`,
          "mtu",
          String(mtu),
          "netns",
          underlay,
        ]),
      );
      sh(["ip", "-n", host(i), "addr", "add", `10.200.0.${i}/24`, "dev", "ul0"]);
      sh(["ip", "-n", host(i), "link", "set", "ul0", "up"]);
      sh(["ip", "-n", underlay, "link", "set", `h${i}`, "master", "ul", "up"]);
    }
    // Snapshots must not catch an IPv6 link-local address still in duplicate address detection.
    for (let i = 1; i <= n; i++) {
      const t0 = Date.now();
      while (sh(["ip", "-n", host(i), "-6", "addr", "show", "tentative"]).trim() !== "") {
        if (Date.now() - t0 > 10_000) throw new Error(`${host(i)}: IPv6 DAD did not finish`);
        sleepMs(100);
      }
    }
  } catch (e) {
    cleanup();
    throw e;
  }
  return { host, underlay, cleanup };
}

export interface AsyncRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The CLI, without blocking: several hosts' `up` run at once. */
export function qnetAsync(
  stateRoot: string,
  args: string[],
  env: Record<string, string> = {},
): { done: Promise<AsyncRun>; pid: number } {
  const child = spawn(
    process.execPath,
    [CLI, args[0]!, "--state-dir", stateRoot, ...args.slice(1)],
    {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => {
    stdout += d;
  });
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  const done = new Promise<AsyncRun>((resolve) =>
    child.on("close", (status, signal) => resolve({ status, signal, stdout, stderr })),
  );
  return { done, pid: child.pid! };
}
