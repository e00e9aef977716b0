// The objects table: every object `qnet status` reports, kept current by the pushed differences.
import type { StatusRow } from "../src/ui/protocol";
import { byId, el } from "./api";

const VM_STATE: Record<string, string> = { present: "up", missing: "down", drifted: "drifted" };

export interface StatusView {
  rows(): StatusRow[];
  /** Replace every row (a snapshot) or merge a difference. */
  apply(update: { rows?: StatusRow[]; changed?: StatusRow[]; removed?: string[] }): void;
  clear(): void;
  highlight(element: string | null): void;
}

export function statusView(opts: {
  consoles: Set<string>;
  onOpenConsole: (vm: string) => void;
  onSelectElement: (element: string) => void;
}): StatusView {
  const body = byId("objects").querySelector("tbody")!;
  let rows: StatusRow[] = [];
  let highlighted: string | null = null;

  function render(): void {
    body.replaceChildren(
      ...rows.map((r) => {
        const state = r.kind === "vm" ? (VM_STATE[r.state] ?? r.state) : r.state;
        const nameCell = el("td", {}, r.name);
        if (r.kind === "vm" && opts.consoles.has(r.name)) {
          const b = el(
            "button",
            {
              type: "button",
              class: "console-button",
              "data-console": r.name,
              title: "serial console",
            },
            "console",
          );
          b.addEventListener("click", (ev) => {
            ev.stopPropagation();
            opts.onOpenConsole(r.name);
          });
          nameCell.append(b);
        }
        const tr = el(
          "tr",
          { "data-key": r.key, "data-state": r.state, "data-kind": r.kind },
          el("td", {}, r.kind),
          nameCell,
          el("td", {}, el("span", { class: `pill ${r.state}` }, state)),
          el("td", {}, r.detail),
        );
        if (r.element) {
          tr.classList.add("linked");
          if (r.element === highlighted) tr.classList.add("selected");
          const target = r.element;
          tr.addEventListener("click", () => opts.onSelectElement(target));
        }
        return tr;
      }),
    );
  }

  return {
    rows: () => rows,
    apply(u) {
      if (u.rows) rows = [...u.rows];
      else {
        const gone = new Set(u.removed ?? []);
        const changed = new Map((u.changed ?? []).map((r) => [r.key, r]));
        rows = rows.filter((r) => !gone.has(r.key)).map((r) => changed.get(r.key) ?? r);
        const known = new Set(rows.map((r) => r.key));
        for (const r of changed.values()) if (!known.has(r.key)) rows.push(r);
      }
      render();
    },
    clear() {
      rows = [];
      render();
    },
    highlight(element) {
      highlighted = element;
      render();
    },
  };
}
