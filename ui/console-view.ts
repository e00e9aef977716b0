// Serial consoles in the page: one xterm.js terminal per VM, in tabs, each over its own WebSocket.
import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import type { ConsoleMessage } from "../src/ui/protocol";
import { byId, el, labSocket, socket } from "./api";

interface OpenConsole {
  vm: string;
  term: Terminal;
  fit: FitAddon;
  ws: WebSocket;
  tab: HTMLButtonElement;
  pane: HTMLElement;
  status: string;
}

export interface Consoles {
  open(vm: string): void;
  closeAll(): void;
}

export function consoles(lab: string): Consoles {
  const section = byId("consoles");
  const tabs = byId("console-tabs");
  const body = byId("console-body");
  const statusLine = byId("console-status");
  const open = new Map<string, OpenConsole>();
  let active: string | null = null;
  const encoder = new TextEncoder();

  function show(vm: string): void {
    active = vm;
    for (const c of open.values()) {
      const on = c.vm === vm;
      c.pane.hidden = !on;
      c.tab.classList.toggle("active", on);
      if (on) {
        statusLine.textContent = c.status;
        requestAnimationFrame(() => {
          c.fit.fit();
          c.term.focus();
        });
      }
    }
  }

  function setStatus(c: OpenConsole, text: string): void {
    c.status = text;
    c.pane.dataset.status = text;
    if (active === c.vm) statusLine.textContent = text;
  }

  function close(vm: string): void {
    const c = open.get(vm);
    if (!c) return;
    open.delete(vm);
    c.ws.close();
    c.term.dispose();
    c.tab.remove();
    c.pane.remove();
    const next = [...open.keys()][0];
    if (next) show(next);
    else {
      active = null;
      section.hidden = true;
    }
  }

  function openConsole(vm: string): void {
    section.hidden = false;
    if (open.has(vm)) {
      show(vm);
      return;
    }
    const pane = el("div", { class: "term", "data-console-vm": vm });
    body.append(pane);
    const term = new Terminal({
      fontFamily: "DejaVu Sans Mono, monospace",
      fontSize: 13,
      scrollback: 5000,
      cursorBlink: true,
      theme: { background: "#000000" },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(pane);
    const x = el("span", { class: "x", title: "close" }, "×");
    const tab = el("button", { type: "button", "data-console-tab": vm }, vm, x);
    tabs.append(tab);
    const ws = socket(`${labSocket(lab)}/consoles/${encodeURIComponent(vm)}`);
    ws.binaryType = "arraybuffer";
    const c: OpenConsole = { vm, term, fit, ws, tab, pane, status: "connecting…" };
    open.set(vm, c);
    tab.addEventListener("click", () => show(vm));
    x.addEventListener("click", (ev) => {
      ev.stopPropagation();
      close(vm);
    });
    ws.addEventListener("message", (ev) => {
      if (ev.data instanceof ArrayBuffer) {
        term.write(new Uint8Array(ev.data));
        return;
      }
      const m = JSON.parse(String(ev.data)) as ConsoleMessage;
      pane.dataset.writer = m.type === "role" && m.writer ? "yes" : "no";
      setStatus(c, m.message);
    });
    ws.addEventListener("close", () => {
      if (open.get(vm) === c && !c.status.includes("closed")) setStatus(c, `${vm}: disconnected`);
    });
    term.onData((d) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(d));
    });
    new ResizeObserver(() => {
      if (!pane.hidden) fit.fit();
    }).observe(pane);
    show(vm);
  }

  return {
    open: openConsole,
    closeAll() {
      for (const vm of [...open.keys()]) close(vm);
    },
  };
}
