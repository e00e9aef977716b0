// The journal: every host change is recorded, with its undo, before it is made; down replays it in reverse.
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { JournalEntry } from "../model/undo.js";

export type { JournalEntry, Undo } from "../model/undo.js";

const FILE = "journal.jsonl";

/** Append-only, fsynced journal in a lab's state directory. */
export class Journal {
  private seq: number;
  /** Test hook: stop the process after this many entries (QNET_KILL_AFTER), to prove crash safety. */
  private readonly killAfter: number | null;

  constructor(readonly dir: string) {
    this.seq = Journal.read(dir).reduce((m, e) => Math.max(m, e.seq), 0);
    const k = process.env.QNET_KILL_AFTER;
    this.killAfter = k && /^\d+$/.test(k) ? Number(k) : null;
  }

  /** Record entries (fsynced) before the change they describe is made. */
  record(...entries: Omit<JournalEntry, "seq">[]): void {
    if (entries.length === 0) return;
    const lines = entries.map((e) => `${JSON.stringify({ seq: ++this.seq, ...e })}\n`).join("");
    const fd = openSync(join(this.dir, FILE), "a", 0o600);
    try {
      writeSync(fd, lines);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    if (this.killAfter !== null && this.seq >= this.killAfter) process.kill(process.pid, "SIGKILL");
  }

  /**
   * Record an entry that `down` takes back after every other one (the lowest sequence number): a
   * namespace-wide change handed over by another lab must outlive this lab's own objects.
   */
  recordLast(entry: Omit<JournalEntry, "seq">): void {
    const seq = Journal.read(this.dir).reduce((m, e) => Math.min(m, e.seq), 1) - 1;
    const fd = openSync(join(this.dir, FILE), "a", 0o600);
    try {
      writeSync(fd, `${JSON.stringify({ seq, ...entry })}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  static read(dir: string): JournalEntry[] {
    const path = join(dir, FILE);
    if (!existsSync(path)) return [];
    const out: JournalEntry[] = [];
    for (const line of readFileSync(path, "utf8").split("\n")) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as JournalEntry);
      } catch {
        // A torn last line (killed mid-write) is skipped: its change was never started.
      }
    }
    return out;
  }
}
