// JSON-object framing over a unix stream socket, shared by the QMP and guest-agent clients.

import net from "node:net";
import { UserError } from "../errors.js";

/** Waiting for the peer took longer than allowed. The stream may now hold a late reply. */
export class SocketTimeoutError extends UserError {
  override name = "SocketTimeoutError";
}

/** The peer sent something that is not the JSON it promised, or closed the stream early. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}

/** Biggest single message we accept (guest-exec output is base64 and capped at 16 MiB by qemu-ga). */
const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;
const SENTINEL = 0xff;
const OPEN = 0x7b; // {
const CLOSE = 0x7d; // }
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

export interface ConnectOptions {
  /** Total time to keep trying while the socket does not exist yet or refuses connections. */
  timeoutMs: number;
  /** Pause between attempts. */
  intervalMs?: number;
  signal?: AbortSignal;
}

const RETRYABLE = new Set(["ENOENT", "ECONNREFUSED", "EAGAIN"]);

/** Connect to a unix socket, retrying while it is absent or refusing (the server is starting). */
export async function connectUnix(path: string, opts: ConnectOptions): Promise<net.Socket> {
  const deadline = Date.now() + opts.timeoutMs;
  const intervalMs = opts.intervalMs ?? 50;
  let lastCode = "";
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      return await connectOnce(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "";
      if (!RETRYABLE.has(code)) throw err;
      lastCode = code;
    }
    if (Date.now() + intervalMs > deadline) {
      throw new SocketTimeoutError(
        `could not connect to ${path} within ${opts.timeoutMs} ms (${lastCode})`,
        "is the QEMU process running, and is this its socket path?",
      );
    }
    await sleep(intervalMs, opts.signal);
  }
}

function connectOnce(path: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.createConnection({ path });
    const onError = (err: Error) => {
      sock.destroy();
      reject(err);
    };
    sock.once("error", onError);
    sock.once("connect", () => {
      sock.off("error", onError);
      resolve(sock);
    });
  });
}

/** Sleep, waking early (with the abort reason) when the signal fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * A reader/writer of top-level JSON objects on a stream socket. Objects are delimited by brace
 * matching (string- and escape-aware), not by newlines, so it works for QMP (CRLF after each
 * object) and qemu-ga (LF, plus 0xFF sentinels) alike. Bytes between objects are ignored.
 * One reader at a time: callers serialise their requests.
 */
export class JsonStream {
  private buf: Buffer = Buffer.alloc(64 * 1024);
  private start = 0;
  private end = 0;
  /** Scanner state for the object being assembled at `objStart`, kept across chunks. */
  private objStart = -1;
  private scanPos = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly sock: net.Socket,
    /** Names the peer in error messages, e.g. the socket path. */
    readonly label: string,
  ) {
    sock.on("data", (chunk: Buffer) => {
      this.append(chunk);
      this.notify();
    });
    sock.on("end", () => {
      this.ended = true;
      this.notify();
    });
    sock.on("close", () => {
      this.ended = true;
      this.notify();
    });
    sock.on("error", (err) => {
      this.failure ??= err;
      this.ended = true;
      this.notify();
    });
  }

  /** True once the peer closed the stream (or it failed). */
  get isClosed(): boolean {
    return this.ended;
  }

  write(data: Buffer | string): void {
    if (this.ended) throw new ProtocolError(`${this.label}: connection closed`);
    this.sock.write(data);
  }

  writeJson(value: unknown): void {
    this.write(`${JSON.stringify(value)}\n`);
  }

  /** Next complete top-level JSON object. Throws SocketTimeoutError, or ProtocolError on EOF. */
  async readObject(timeoutMs: number, what: string): Promise<Record<string, unknown>> {
    return this.waitFor(() => this.takeObject(), timeoutMs, what);
  }

  /** Discard everything up to and including the next 0xFF byte. */
  async skipToSentinel(timeoutMs: number, what: string): Promise<void> {
    await this.waitFor(() => this.takeSentinel(), timeoutMs, what);
  }

  /** Resolves when the peer closes the stream; throws SocketTimeoutError otherwise. */
  async waitClosed(timeoutMs: number): Promise<void> {
    await this.waitFor(
      () => {
        // Drop whatever arrives meanwhile (late replies, events).
        this.start = this.end;
        this.resetScan();
        return this.ended ? true : undefined;
      },
      timeoutMs,
      "the peer to close the connection",
      true,
    );
  }

  close(): void {
    this.ended = true;
    this.sock.destroy();
    this.notify();
  }

  private async waitFor<T>(
    take: () => T | undefined,
    timeoutMs: number,
    what: string,
    endIsResult = false,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = take();
      if (got !== undefined) return got;
      if (this.ended && !endIsResult) {
        const why = this.failure ? `: ${this.failure.message}` : "";
        throw new ProtocolError(`${this.label}: connection closed while waiting for ${what}${why}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new SocketTimeoutError(
          `${this.label}: no answer within ${timeoutMs} ms while waiting for ${what}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.wake = done;
      });
      this.wake = undefined;
    }
  }

  private notify(): void {
    this.wake?.();
  }

  private append(chunk: Buffer): void {
    if (this.end + chunk.length > this.buf.length) {
      const live = this.end - this.start;
      if (live + chunk.length > MAX_MESSAGE_BYTES) {
        this.failure = new ProtocolError(`${this.label}: message larger than ${MAX_MESSAGE_BYTES}`);
        this.close();
        return;
      }
      let size = this.buf.length;
      while (size < live + chunk.length) size *= 2;
      const next = size === this.buf.length ? this.buf : Buffer.alloc(size);
      this.buf.copy(next, 0, this.start, this.end);
      this.shiftScan(this.start);
      this.buf = next;
      this.end = live;
      this.start = 0;
    }
    chunk.copy(this.buf, this.end);
    this.end += chunk.length;
  }

  private shiftScan(by: number): void {
    if (this.objStart >= 0) this.objStart -= by;
    this.scanPos = Math.max(0, this.scanPos - by);
  }

  private resetScan(): void {
    this.objStart = -1;
    this.scanPos = this.start;
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
  }

  private takeSentinel(): true | undefined {
    const i = this.buf.indexOf(SENTINEL, this.start);
    if (i >= 0 && i < this.end) {
      this.start = i + 1;
      this.resetScan();
      return true;
    }
    this.start = this.end; // nothing before a sentinel matters
    this.resetScan();
    return undefined;
  }

  private takeObject(): Record<string, unknown> | undefined {
    const b = this.buf;
    if (this.scanPos < this.start) this.scanPos = this.start;
    for (let i = this.scanPos; i < this.end; i++) {
      const c = b[i]!;
      if (c === SENTINEL) {
        // qemu-ga's reset marker: a partial object before it is void.
        this.start = i + 1;
        this.resetScan();
        continue;
      }
      if (this.objStart < 0) {
        if (c === OPEN) {
          this.objStart = i;
          this.depth = 1;
        } else {
          this.start = i + 1; // whitespace or noise between objects
        }
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === BACKSLASH) this.escaped = true;
        else if (c === QUOTE) this.inString = false;
        continue;
      }
      if (c === QUOTE) this.inString = true;
      else if (c === OPEN) this.depth++;
      else if (c === CLOSE && --this.depth === 0) {
        const text = b.toString("utf8", this.objStart, i + 1);
        this.start = i + 1;
        this.resetScan();
        let value: unknown;
        try {
          value = JSON.parse(text);
        } catch (err) {
          throw new ProtocolError(`${this.label}: invalid JSON from peer: ${text.slice(0, 200)}`, {
            cause: err,
          });
        }
        return value as Record<string, unknown>;
      }
    }
    this.scanPos = this.end;
    return undefined;
  }
}
