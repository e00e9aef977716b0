// Live state of one lab for its viewers: refresh `status` on a timer while anyone watches, push differences.
import type { LabFacts } from "./lab-facts.js";
import type { StateMessage, StatusRow } from "./protocol.js";

/** Something that takes pushed messages (a WebSocket). */
export interface Subscriber {
  send(message: StateMessage): void;
}

const sameRow = (a: StatusRow, b: StatusRow) => JSON.stringify(a) === JSON.stringify(b);

/** What changed between two lists of rows (by key). */
export function diffRows(
  before: StatusRow[],
  after: StatusRow[],
): { changed: StatusRow[]; removed: string[] } {
  const old = new Map(before.map((r) => [r.key, r]));
  const now = new Set(after.map((r) => r.key));
  return {
    changed: after.filter((r) => {
      const o = old.get(r.key);
      return !o || !sameRow(o, r);
    }),
    removed: before.filter((r) => !now.has(r.key)).map((r) => r.key),
  };
}

export class LabWatcher {
  private readonly subscribers = new Set<Subscriber>();
  private last: Extract<StateMessage, { type: "snapshot" }> | null = null;
  private goneMessage: string | null = null;
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private stopped = false;

  constructor(
    private readonly facts: LabFacts,
    readonly lab: string,
    /** Pause between the end of one refresh and the start of the next. */
    private readonly intervalMs: number,
    private readonly onError: (e: unknown) => void,
  ) {}

  get watching(): number {
    return this.subscribers.size;
  }

  /** A new viewer gets the last full state at once (if any), then differences. */
  subscribe(s: Subscriber): () => void {
    this.subscribers.add(s);
    if (this.last) s.send(this.last);
    else if (this.goneMessage)
      s.send({ type: "gone", at: new Date().toISOString(), message: this.goneMessage });
    if (!this.running && !this.stopped) this.running = this.loop();
    return () => {
      this.subscribers.delete(s);
    };
  }

  broadcast(m: StateMessage): void {
    for (const s of this.subscribers) s.send(m);
  }

  /** Refresh now instead of at the end of the current pause (after a check, say). */
  poke(): void {
    this.wake?.();
  }

  /** Stop refreshing; resolves when a refresh in progress has ended. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
  }

  private async loop(): Promise<void> {
    try {
      while (this.subscribers.size > 0 && !this.stopped) {
        await this.refresh();
        if (this.subscribers.size === 0 || this.stopped) break;
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          this.timer = setTimeout(resolve, this.intervalMs);
        });
        if (this.timer) clearTimeout(this.timer);
        this.wake = null;
      }
    } finally {
      this.running = null;
      // Nobody watches: forget the state, so the next viewer never sees a stale one.
      this.last = null;
      this.goneMessage = null;
    }
  }

  private async refresh(): Promise<void> {
    let r: Awaited<ReturnType<LabFacts["status"]>>;
    try {
      r = await this.facts.status(this.lab);
    } catch (e) {
      this.onError(e);
      return;
    }
    const at = new Date().toISOString();
    if (r.gone) {
      if (this.goneMessage !== r.message) this.broadcast({ type: "gone", at, message: r.message });
      this.goneMessage = r.message;
      this.last = null;
      return;
    }
    this.goneMessage = null;
    const snapshot = {
      type: "snapshot" as const,
      at,
      generation: r.generation,
      ok: r.ok,
      rows: r.rows,
    };
    const prev = this.last;
    this.last = snapshot;
    // A lab brought up again is another lab: its viewers start over from a full state.
    if (!prev || prev.generation !== r.generation) {
      this.broadcast(snapshot);
      return;
    }
    const { changed, removed } = diffRows(prev.rows, r.rows);
    if (changed.length || removed.length || prev.ok !== r.ok)
      this.broadcast({ type: "diff", at, generation: r.generation, ok: r.ok, changed, removed });
  }
}
