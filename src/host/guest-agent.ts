// QEMU guest agent (qemu-ga) client over the host end of a virtio-serial socket: sync, ping, exec.
//
// The stream to the agent outlives clients and the agent itself: QEMU (server=on,wait=off)
// accepts a connection before the guest runs, bytes wait in buffers until the agent reads them,
// and replies meant for an earlier client may still be queued. So every connection starts with
// guest-sync-delimited carrying a random id: we send 0xFF (the agent drops any half-read input),
// then the sync request, and ignore everything until a 0xFF sentinel followed by our id. If an
// attempt times out the sync is repeated with a new id; a command that times out marks the
// stream for a re-sync before the next one. Requests go one at a time, and a lock file next to
// the socket keeps other clients (other qnet processes) off it meanwhile.

import { randomInt } from "node:crypto";
import { UserError } from "../errors.js";
import { acquireLock, type LockHandle } from "./socket-lock.js";
import { connectUnix, JsonStream, ProtocolError, SocketTimeoutError, sleep } from "./unix-json.js";

/** The agent answered a command with an error. */
export class GuestAgentError extends Error {
  override name = "GuestAgentError";
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`guest agent ${command} failed: ${errorClass}: ${desc}`);
  }
}

export interface GuestAgentConnectOptions {
  /** Total time for the lock, the socket and a successful sync. */
  timeoutMs: number;
  /** Time one sync attempt waits before it is repeated with a new id (default 1500 ms). */
  syncTimeoutMs?: number;
  signal?: AbortSignal;
}

export interface ExecOptions {
  /** Written to the program's stdin, which is then closed. */
  input?: Buffer | string;
  /** Time for the program to finish (default 60 s). It is not killed on timeout. */
  timeoutMs?: number;
  /** Environment, as "NAME=value" strings. */
  env?: string[];
}

export interface ExecResult {
  /** Exit status; 128 + signal number when a signal ended the program (shell convention). */
  exitCode: number;
  /** Set when a signal ended the program. */
  signal?: number;
  stdout: Buffer;
  stderr: Buffer;
}

export interface GuestInterface {
  name: string;
  /** Lower-case MAC, "" when the agent reports none. */
  mac: string;
  addresses: Array<{ ip: string; prefix: number; family: "ipv4" | "ipv6" }>;
}

const DEFAULT_SYNC_TIMEOUT_MS = 1_500;
const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;
const DEFAULT_EXEC_TIMEOUT_MS = 60_000;

export class GuestAgent {
  private needsSync = false;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly stream: JsonStream,
    private readonly lock: LockHandle,
    readonly socketPath: string,
    private readonly syncTimeoutMs: number,
  ) {}

  /** Lock the socket, connect, and synchronise with the agent (retrying until `timeoutMs`). */
  static async connect(socketPath: string, opts: GuestAgentConnectOptions): Promise<GuestAgent> {
    const deadline = Date.now() + opts.timeoutMs;
    const lock = await acquireLock(`${socketPath}.lock`, {
      timeoutMs: opts.timeoutMs,
      signal: opts.signal,
      what: `guest agent socket ${socketPath}`,
    });
    let stream: JsonStream | undefined;
    try {
      const sock = await connectUnix(socketPath, {
        timeoutMs: left(deadline),
        signal: opts.signal,
      });
      stream = new JsonStream(sock, `guest agent ${socketPath}`);
      const agent = new GuestAgent(
        stream,
        lock,
        socketPath,
        opts.syncTimeoutMs ?? DEFAULT_SYNC_TIMEOUT_MS,
      );
      await agent.sync(deadline, opts.signal);
      return agent;
    } catch (err) {
      stream?.close();
      lock.release();
      throw err;
    }
  }

  /** guest-ping: resolves when the agent answers. */
  async ping(opts: { timeoutMs?: number } = {}): Promise<void> {
    await this.execute("guest-ping", undefined, opts);
  }

  /** Run a program in the guest (guest-exec with captured output), wait for it to exit. */
  async exec(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const [path, ...rest] = argv;
    if (path === undefined) throw new UserError("guest exec needs a program to run");
    const args: Record<string, unknown> = { path, arg: rest, "capture-output": true };
    if (opts.env) args.env = opts.env;
    if (opts.input !== undefined) args["input-data"] = Buffer.from(opts.input).toString("base64");
    const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS;
    const deadline = Date.now() + timeoutMs;
    const started = await this.execute<{ pid: number }>("guest-exec", args);
    let pause = 10;
    for (;;) {
      const st = await this.execute<ExecStatus>(
        "guest-exec-status",
        { pid: started.pid },
        { timeoutMs: Math.max(1_000, Math.min(DEFAULT_COMMAND_TIMEOUT_MS, left(deadline))) },
      );
      if (st.exited) return toExecResult(st);
      if (Date.now() >= deadline) {
        throw new UserError(
          `${argv.join(" ")} still running in the guest (pid ${started.pid}) after ${timeoutMs} ms`,
          `socket ${this.socketPath}; raise the timeout or check the program inside the guest`,
        );
      }
      await sleep(Math.min(pause, left(deadline)));
      pause = Math.min(pause * 2, 200);
    }
  }

  /** The guest's interfaces and addresses (guest-network-get-interfaces). */
  async networkInterfaces(): Promise<GuestInterface[]> {
    const raw = await this.execute<RawInterface[]>("guest-network-get-interfaces");
    return raw.map((i) => ({
      name: i.name,
      mac: (i["hardware-address"] ?? "").toLowerCase(),
      addresses: (i["ip-addresses"] ?? []).map((a) => ({
        ip: a["ip-address"],
        prefix: a.prefix,
        family: a["ip-address-type"] === "ipv6" ? ("ipv6" as const) : ("ipv4" as const),
      })),
    }));
  }

  /** Run any agent command and return its `return` value; GuestAgentError on an error reply. */
  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    opts: { timeoutMs?: number } = {},
  ): Promise<T> {
    const run = this.queue.then(() => this.executeNow<T>(command, args, opts.timeoutMs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Disconnect and release the socket lock. */
  close(): void {
    this.stream.close();
    this.lock.release();
  }

  private async executeNow<T>(
    command: string,
    args: Record<string, unknown> | undefined,
    timeoutMs = DEFAULT_COMMAND_TIMEOUT_MS,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    if (this.needsSync) await this.sync(deadline);
    this.stream.writeJson(
      args === undefined ? { execute: command } : { execute: command, arguments: args },
    );
    let reply: Record<string, unknown>;
    try {
      reply = await this.stream.readObject(left(deadline), `the reply to ${command}`);
    } catch (err) {
      if (err instanceof SocketTimeoutError) this.needsSync = true; // a late reply may follow
      throw err;
    }
    if ("return" in reply) return reply.return as T;
    const error = reply.error as { class?: unknown; desc?: unknown } | undefined;
    if (error && typeof error === "object") {
      throw new GuestAgentError(command, String(error.class ?? "?"), String(error.desc ?? ""));
    }
    this.needsSync = true;
    throw new ProtocolError(
      `guest agent ${this.socketPath}: unexpected reply to ${command}: ${JSON.stringify(reply)}`,
    );
  }

  /** guest-sync-delimited with fresh ids until one is echoed after a sentinel, or `deadline`. */
  private async sync(deadline: number, signal?: AbortSignal): Promise<void> {
    const started = Date.now();
    let attempts = 0;
    for (;;) {
      signal?.throwIfAborted();
      attempts++;
      const id = randomInt(1, 2 ** 47);
      this.stream.write(Buffer.from([0xff]));
      this.stream.writeJson({ execute: "guest-sync-delimited", arguments: { id } });
      const attemptEnd = Math.min(deadline, Date.now() + this.syncTimeoutMs);
      try {
        for (;;) {
          await this.stream.skipToSentinel(left(attemptEnd), "the guest-sync sentinel");
          const reply = await this.stream.readObject(left(attemptEnd), "the guest-sync reply");
          if (reply.return === id) {
            this.needsSync = false;
            return;
          }
          // A reply to an earlier sync (ours or a previous client's): keep looking.
        }
      } catch (err) {
        if (!(err instanceof SocketTimeoutError)) throw err;
      }
      if (Date.now() >= deadline) {
        throw new SocketTimeoutError(
          `guest agent on ${this.socketPath} did not answer guest-sync within ${Date.now() - started} ms (${attempts} attempts)`,
          "is the guest booted and qemu-guest-agent running in it?",
        );
      }
    }
  }
}

/**
 * Wait until the guest agent behind `socketPath` answers connect + sync + ping, retrying every
 * `intervalMs` until `timeoutMs`. Throws a UserError naming the socket and the time waited.
 */
export async function waitForAgent(
  socketPath: string,
  opts: { timeoutMs: number; intervalMs: number; signal?: AbortSignal; syncTimeoutMs?: number },
): Promise<void> {
  const started = Date.now();
  const deadline = started + opts.timeoutMs;
  let last: unknown;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      const agent = await GuestAgent.connect(socketPath, {
        timeoutMs: left(deadline),
        syncTimeoutMs: opts.syncTimeoutMs,
        signal: opts.signal,
      });
      try {
        await agent.ping({ timeoutMs: Math.max(1_000, left(deadline)) });
        return;
      } finally {
        agent.close();
      }
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      last = err;
    }
    if (Date.now() + opts.intervalMs >= deadline) {
      const why = last instanceof Error ? ` (last error: ${last.message})` : "";
      throw new UserError(
        `guest agent on ${socketPath} did not answer after waiting ${Date.now() - started} ms${why}`,
        "check that the guest booted (serial log) and runs qemu-guest-agent on org.qemu.guest_agent.0",
        undefined,
        { cause: last },
      );
    }
    await sleep(opts.intervalMs, opts.signal);
  }
}

interface ExecStatus {
  exited: boolean;
  exitcode?: number;
  signal?: number;
  "out-data"?: string;
  "err-data"?: string;
}

interface RawInterface {
  name: string;
  "hardware-address"?: string;
  "ip-addresses"?: Array<{ "ip-address-type": string; "ip-address": string; prefix: number }>;
}

function toExecResult(st: ExecStatus): ExecResult {
  const result: ExecResult = {
    exitCode: st.exitcode ?? (st.signal !== undefined ? 128 + st.signal : -1),
    stdout: Buffer.from(st["out-data"] ?? "", "base64"),
    stderr: Buffer.from(st["err-data"] ?? "", "base64"),
  };
  if (st.signal !== undefined) result.signal = st.signal;
  return result;
}

function left(deadline: number): number {
  return Math.max(0, deadline - Date.now());
}
