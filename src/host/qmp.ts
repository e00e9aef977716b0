// QMP client: talks to a running QEMU over its monitor unix socket (status, quit, any command).

import { UserError } from "../errors.js";
import { connectUnix, JsonStream, ProtocolError } from "./unix-json.js";

/** QEMU answered a command with an error. */
export class QmpError extends Error {
  override name = "QmpError";
  constructor(
    readonly command: string,
    /** QMP error class, e.g. "GenericError", "CommandNotFound". */
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${desc}`);
  }
}

export interface QmpEvent {
  event: string;
  data?: unknown;
  timestamp?: { seconds: number; microseconds: number };
}

export interface QmpConnectOptions {
  /** Time allowed for the socket to appear, the greeting and capability negotiation. */
  timeoutMs: number;
  /** Pause between connection attempts while the socket is absent. */
  intervalMs?: number;
  signal?: AbortSignal;
}

/** Default time a command may take. */
const COMMAND_TIMEOUT_MS = 10_000;
/** Events kept for `events`; older ones are dropped. */
const MAX_EVENTS = 256;

export class QmpClient {
  /** Events QEMU sent while we waited for replies, oldest first (bounded). */
  readonly events: QmpEvent[] = [];
  private nextId = 1;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly stream: JsonStream,
    /** The `QMP` member of the greeting (version, capabilities). */
    readonly greeting: Record<string, unknown>,
  ) {}

  /** Connect (retrying while the socket appears), read the greeting, leave negotiation mode. */
  static async connect(socketPath: string, opts: QmpConnectOptions): Promise<QmpClient> {
    const deadline = Date.now() + opts.timeoutMs;
    const sock = await connectUnix(socketPath, opts);
    const stream = new JsonStream(sock, `QMP ${socketPath}`);
    try {
      const hello = await stream.readObject(left(deadline), "the QMP greeting");
      const qmp = hello.QMP;
      if (typeof qmp !== "object" || qmp === null) {
        throw new ProtocolError(
          `QMP ${socketPath}: expected a greeting, got ${JSON.stringify(hello)}`,
        );
      }
      const client = new QmpClient(stream, qmp as Record<string, unknown>);
      await client.execute("qmp_capabilities", undefined, { timeoutMs: left(deadline) });
      return client;
    } catch (err) {
      stream.close();
      throw err;
    }
  }

  /** Run one command and return its `return` value; throws QmpError when QEMU reports an error. */
  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    opts: { timeoutMs?: number } = {},
  ): Promise<T> {
    const run = this.queue.then(() => this.executeNow<T>(command, args, opts.timeoutMs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** True once QEMU closed the connection (it exited, or another error). */
  get isClosed(): boolean {
    return this.stream.isClosed;
  }

  /** Wait for QEMU to close the connection (after `quit`). */
  waitClosed(timeoutMs: number): Promise<void> {
    return this.stream.waitClosed(timeoutMs);
  }

  close(): void {
    this.stream.close();
  }

  private async executeNow<T>(
    command: string,
    args: Record<string, unknown> | undefined,
    timeoutMs = COMMAND_TIMEOUT_MS,
  ): Promise<T> {
    const id = `qnet-${this.nextId++}`;
    this.stream.writeJson(
      args === undefined ? { execute: command, id } : { execute: command, arguments: args, id },
    );
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const msg = await this.stream.readObject(left(deadline), `the reply to ${command}`);
      if (typeof msg.event === "string") {
        this.events.push(msg as unknown as QmpEvent);
        if (this.events.length > MAX_EVENTS) this.events.shift();
        continue;
      }
      if (msg.id !== id) continue; // a reply to a command we gave up on earlier
      if ("return" in msg) return msg.return as T;
      const error = msg.error as { class?: unknown; desc?: unknown } | undefined;
      if (error && typeof error === "object") {
        throw new QmpError(command, String(error.class ?? "?"), String(error.desc ?? ""));
      }
      throw new ProtocolError(`unexpected QMP reply to ${command}: ${JSON.stringify(msg)}`);
    }
  }
}

function left(deadline: number): number {
  return Math.max(0, deadline - Date.now());
}

/**
 * Ask QEMU to quit and wait until it has closed the monitor (it is exiting).
 * Throws a UserError if the socket cannot be reached or QEMU does not go away in time.
 */
export async function qmpQuit(socketPath: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const client = await QmpClient.connect(socketPath, { timeoutMs });
  try {
    try {
      await client.execute("quit", undefined, { timeoutMs: left(deadline) });
    } catch (err) {
      // QEMU may close the socket before the reply is flushed: that is a successful quit.
      if (!(err instanceof ProtocolError && client.isClosed)) throw err;
    }
    try {
      await client.waitClosed(left(deadline));
    } catch (err) {
      throw new UserError(
        `QEMU accepted quit on ${socketPath} but did not exit within ${timeoutMs} ms`,
        "kill the QEMU process by its PID",
        undefined,
        { cause: err },
      );
    }
  } finally {
    client.close();
  }
}

export interface QmpStatus {
  /** True while the guest CPUs run (status "running"). */
  running: boolean;
  /** QEMU's run state: "running", "paused", "prelaunch", "shutdown", "inmigrate", ... */
  status: string;
}

/** One-shot `query-status` on a QMP socket. */
export async function qmpQueryStatus(socketPath: string, timeoutMs = 5_000): Promise<QmpStatus> {
  const deadline = Date.now() + timeoutMs;
  const client = await QmpClient.connect(socketPath, { timeoutMs });
  try {
    const r = await client.execute<{ running: boolean; status: string }>(
      "query-status",
      undefined,
      {
        timeoutMs: left(deadline),
      },
    );
    return { running: r.running === true, status: String(r.status) };
  } finally {
    client.close();
  }
}
