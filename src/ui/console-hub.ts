// One VM's serial console shared by its browser viewers: one connection to QEMU, output to every viewer,
// keyboard from one viewer at a time (the oldest; the others watch until it leaves).
import { closeSync, fstatSync, openSync, readFileSync, readSync } from "node:fs";
import { connect, type Socket } from "node:net";
import type { ConsoleMessage } from "./protocol.js";

/** A browser's end of the console (a WebSocket). */
export interface ConsoleViewer {
  sendData(bytes: Buffer): void;
  sendControl(message: ConsoleMessage): void;
  close(code: number, reason: string): void;
}

/** How much of the console log a new viewer sees first (its recent screen, not the whole boot). */
const LOG_TAIL_BYTES = 16 * 1024;

/** The last `max` bytes of a file, from the start of a line where possible ("" when it cannot be read). */
export function readTail(path: string, max = LOG_TAIL_BYTES): Buffer {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const size = fstatSync(fd).size;
    const start = Math.max(0, size - max);
    const buf = Buffer.alloc(size - start);
    const n = readSync(fd, buf, 0, buf.length, start);
    const out = buf.subarray(0, n);
    if (start === 0) return out;
    const nl = out.indexOf(0x0a);
    return nl >= 0 ? out.subarray(nl + 1) : out;
  } finally {
    closeSync(fd);
  }
}

/**
 * The clients QEMU has accepted on its unix socket `path` (another `qnet console`, say), as the inodes of
 * their accepted sockets; null when the socket tables cannot be read. An accepted socket belongs to the
 * client's network namespace: ours (a `qnet console` on this host) and QEMU's are read.
 */
export function acceptedClients(pidfile: string, path: string): string[] | null {
  const tables = ["/proc/self/net/unix"];
  try {
    const pid = Number(readFileSync(pidfile, "utf8").trim());
    if (Number.isInteger(pid) && pid > 1) tables.push(`/proc/${pid}/net/unix`);
  } catch {
    // no pidfile: our own namespace only
  }
  // Num RefCount Protocol Flags Type St Inode Path: accepted connections carry the path, state 03.
  const line = /^\S+: \S+ \S+ \S+ \S+ (\S+) +(\S+) (.*)$/;
  const out = new Set<string>();
  let read = false;
  for (const t of tables) {
    let text: string;
    try {
      text = readFileSync(t, "utf8");
    } catch {
      continue;
    }
    read = true;
    for (const l of text.split("\n")) {
      const m = line.exec(l.trim());
      if (m?.[1] === "03" && m[3] === path) out.add(m[2]!);
    }
  }
  return read ? [...out] : null;
}

export class ConsoleHub {
  private readonly viewers: ConsoleViewer[] = [];
  private socket: Socket | null = null;
  private connected: Promise<void> | null = null;
  /** Viewers told that they cannot type (told once, not on every key). */
  private readonly toldReadOnly = new WeakSet<ConsoleViewer>();
  /** Another client held QEMU's socket when we connected (its inodes): QEMU serves us once it leaves. */
  private waitingFor: Set<string> | null = null;
  private waitTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly vm: string,
    private readonly paths: { socket: string; log: string; pidfile?: string },
    /** Called when the last viewer has left and the connection to QEMU is closed. */
    private readonly onEmpty: () => void,
  ) {}

  get viewerCount(): number {
    return this.viewers.length;
  }

  private writer(): ConsoleViewer | undefined {
    return this.viewers[0];
  }

  /** Add a viewer: it gets the console's recent output, then everything QEMU sends. */
  async join(v: ConsoleViewer): Promise<void> {
    this.viewers.push(v);
    try {
      await this.open();
    } catch (e) {
      this.leave(v);
      v.sendControl({
        type: "closed",
        message: `cannot open ${this.vm}'s console: ${(e as Error).message} (is the VM running?)`,
      });
      v.close(1011, "console unavailable");
      return;
    }
    if (!this.viewers.includes(v)) return;
    const tail = readTail(this.paths.log);
    if (tail.length) v.sendData(tail);
    v.sendControl(this.roleOf(v));
  }

  private roleOf(v: ConsoleViewer): ConsoleMessage {
    if (this.writer() !== v)
      return {
        type: "role",
        writer: false,
        message: `read-only: another viewer is typing into ${this.vm}'s console; you get the keyboard when it closes`,
      };
    if (this.waitingFor)
      return {
        type: "role",
        writer: true,
        message: `another client (such as \`qnet console\`) holds ${this.vm}'s console and QEMU serves one at a time: this view starts when it detaches (keys typed meanwhile wait for it)`,
      };
    return { type: "role", writer: true, message: `connected to ${this.vm}'s serial console` };
  }

  /** Keys from a viewer: passed on only from the writer. */
  input(v: ConsoleViewer, bytes: Buffer): void {
    if (this.writer() === v) {
      this.socket?.write(bytes);
      return;
    }
    if (!this.toldReadOnly.has(v)) {
      this.toldReadOnly.add(v);
      v.sendControl({
        type: "role",
        writer: false,
        message: `read-only: another viewer is typing into ${this.vm}'s console; your keys were not sent`,
      });
    }
  }

  leave(v: ConsoleViewer): void {
    const i = this.viewers.indexOf(v);
    if (i < 0) return;
    const wasWriter = i === 0;
    this.viewers.splice(i, 1);
    const next = this.writer();
    if (wasWriter && next) {
      next.sendControl({
        type: "role",
        writer: true,
        message: `the other viewer left: you now type into ${this.vm}'s console`,
      });
    }
    if (this.viewers.length === 0) this.shut();
  }

  /** Close every viewer and the connection to QEMU (server shutdown). */
  closeAll(reason: string): void {
    for (const v of this.viewers.splice(0)) v.close(1001, reason);
    this.shut();
  }

  private open(): Promise<void> {
    if (this.connected) return this.connected;
    const pidfile = this.paths.pidfile;
    const held = pidfile ? acceptedClients(pidfile, this.paths.socket) : null;
    if (pidfile && held?.length) {
      this.waitingFor = new Set(held);
      // Watch for the other client to go: then QEMU accepts our connection.
      this.waitTimer = setInterval(() => {
        const now = acceptedClients(pidfile, this.paths.socket) ?? [];
        if (!now.some((i) => this.waitingFor?.has(i))) this.served();
      }, 500);
      this.waitTimer.unref();
    }
    this.connected = new Promise<void>((resolve, reject) => {
      const s = connect(this.paths.socket);
      this.socket = s;
      let up = false;
      s.once("connect", () => {
        up = true;
        resolve();
      });
      s.on("data", (d: Buffer) => {
        this.served();
        for (const v of this.viewers) v.sendData(d);
      });
      s.on("error", (e) => reject(e));
      s.on("close", () => {
        if (this.socket !== s) return;
        this.socket = null;
        this.connected = null;
        if (this.waitTimer) clearInterval(this.waitTimer);
        this.waitTimer = null;
        this.waitingFor = null;
        // Never connected: join() tells its viewer.
        if (!up) return;
        // QEMU went away (the VM stopped): tell the viewers and let them go.
        for (const v of this.viewers.splice(0)) {
          v.sendControl({ type: "closed", message: `${this.vm}'s console closed (QEMU stopped)` });
          v.close(1000, "console closed");
        }
        this.onEmpty();
      });
    });
    return this.connected;
  }

  /** The other client left: QEMU serves us now; the writer is told. */
  private served(): void {
    if (this.waitTimer) clearInterval(this.waitTimer);
    this.waitTimer = null;
    if (!this.waitingFor) return;
    this.waitingFor = null;
    const w = this.writer();
    if (w) w.sendControl(this.roleOf(w));
  }

  private shut(): void {
    if (this.waitTimer) clearInterval(this.waitTimer);
    this.waitTimer = null;
    this.waitingFor = null;
    const s = this.socket;
    this.socket = null;
    this.connected = null;
    s?.destroy();
    this.onEmpty();
  }
}
