// The qnet web view: the list of labs (#/) or one lab (#/lab/NAME) with its graph, state, check and consoles.
import "@xterm/xterm/css/xterm.css";
import "./style.css";
import type {
  CheckView,
  GraphNode,
  LabsMessage,
  StateMessage,
  Topology,
  UiConfig,
} from "../src/ui/protocol";
import { byId, el, getJson, labPath, labSocket, postJson, socket } from "./api";
import { type CheckViewState, wireCheck } from "./check-button";
import { consoles } from "./console-view";
import { drawGraph, type Graph } from "./graph";
import { statusView } from "./status-view";

declare global {
  interface Window {
    /** The graph's cytoscape instance (for people poking at the page, and for tests). */
    qnetGraph?: unknown;
  }
}

/** What the current view must undo when the page shows another. */
const teardown: (() => void)[] = [];

function leave(): void {
  for (const f of teardown.splice(0).reverse()) f();
}

function tabs(): (name: string) => void {
  const buttons = [...document.querySelectorAll<HTMLButtonElement>(".tabs button")];
  const select = (name: string) => {
    for (const b of buttons) {
      const on = b.dataset.tab === name;
      b.classList.toggle("active", on);
      byId(`tab-${b.dataset.tab}`).hidden = !on;
    }
  };
  for (const b of buttons) b.onclick = () => select(b.dataset.tab!);
  return select;
}

function showLabs(): void {
  byId("lab-view").hidden = true;
  byId("labs-view").hidden = false;
  byId("check-button").hidden = true;
  byId("health").hidden = true;
  byId("title").textContent = "labs";
  const body = byId("labs").querySelector("tbody")!;
  const ws = socket("/ws/labs");
  ws.onmessage = (ev) => {
    const m = JSON.parse(String(ev.data)) as LabsMessage;
    byId("labs-empty").hidden = m.labs.length > 0;
    body.replaceChildren(
      ...m.labs.map((l) =>
        el(
          "tr",
          { "data-lab": l.name },
          el("td", {}, el("a", { href: `#/lab/${encodeURIComponent(l.name)}` }, l.name)),
          el("td", {}, el("span", { class: `pill ${l.state === "up" ? "up" : ""}` }, l.state)),
          el("td", {}, l.netns ?? ""),
          el("td", {}, l.file ?? ""),
        ),
      ),
    );
  };
  teardown.push(() => ws.close());
}

function details(node: GraphNode | null, t: Topology, openConsole: (vm: string) => void): void {
  const pane = byId("tab-details");
  if (!node) {
    pane.replaceChildren(el("p", { class: "hint" }, "Select a node of the graph."));
    return;
  }
  const items = node.details.map((d) => el("dd", {}, d));
  const extra: HTMLElement[] = [];
  if (node.kind === "vm" && t.consoles.includes(node.name)) {
    const b = el("button", { type: "button" }, `open ${node.name}'s console`);
    b.onclick = () => openConsole(node.name);
    extra.push(b);
  }
  // A NIC of a running VM: its traffic as a pcap (100 frames or 10 s, whichever ends first).
  const vm = node.parent?.slice("vm:".length);
  if (node.kind === "nic" && vm && t.consoles.includes(vm)) {
    const q = new URLSearchParams({ vm, nic: node.name, count: "100", seconds: "10" });
    extra.push(
      el(
        "a",
        {
          class: "capture",
          href: `/api/labs/${encodeURIComponent(t.lab)}/capture?${q}`,
          download: `${t.lab}-${vm}-nic${node.name}.pcap`,
        },
        "download a capture (100 frames or 10 s)",
      ),
    );
  }
  pane.replaceChildren(el("h3", {}, `${node.kind} ${node.name}`), el("dl", {}, ...items), ...extra);
}

async function showLab(name: string): Promise<void> {
  byId("labs-view").hidden = true;
  byId("lab-view").hidden = false;
  byId("title").textContent = `lab ${name}`;
  const selectTab = tabs();
  selectTab("objects");
  let t: Topology;
  try {
    t = await getJson<Topology>(`${labPath(name)}/topology`);
    performance.mark("qnet:topology-fetched");
  } catch (e) {
    const n = byId("notice");
    n.hidden = false;
    n.textContent = `cannot show lab ${name}: ${(e as Error).message}`;
    return;
  }
  byId("title").textContent =
    `lab ${t.lab}${t.netns ? ` · netns ${t.netns}` : ""}${t.source === "file" ? ` · ${t.file} (not running)` : ""}`;
  const term = consoles(t.lab);
  teardown.push(() => term.closeAll());
  let graph: Graph | null = null;
  const status = statusView({
    consoles: new Set(t.consoles),
    onOpenConsole: (vm) => term.open(vm),
    onSelectElement: (id) => graph?.select(id),
  });
  teardown.push(() => {
    status.clear();
    byId("notice").hidden = true;
    byId("health").hidden = true;
    byId("updated").textContent = "";
    details(null, t, term.open);
  });
  graph = drawGraph(byId("graph"), t, (node) => {
    details(node, t, term.open);
    status.highlight(node?.id ?? null);
    if (node) selectTab("details");
  });
  const g = graph;
  window.qnetGraph = g.cy;
  teardown.push(() => {
    g.destroy();
    window.qnetGraph = undefined;
    delete document.body.dataset.drawn;
  });
  g.drawn.then(() => {
    performance.mark("qnet:topology-drawn");
    document.body.dataset.drawn = String(t.nodes.length);
  });
  if (t.source !== "live") {
    const hint = byId("objects-hint");
    hint.hidden = false;
    hint.textContent = `${t.file}: a topology file, drawn without live state. Bring it up (qnet up) to see its state, check it and open its consoles.`;
    byId("objects").hidden = true;
    teardown.push(() => {
      hint.hidden = true;
      byId("objects").hidden = false;
    });
    return;
  }
  const check: CheckViewState = wireCheck({
    run: () => postJson<CheckView>(`${labPath(t.lab)}/check`),
    onStart: () => selectTab("check"),
  });
  teardown.push(() => check.dispose());
  liveState(t.lab, (m) => {
    if (m.type === "check") return check.onMessage(m);
    const health = byId("health");
    health.hidden = false;
    const notice = byId("notice");
    if (m.type === "error") {
      notice.hidden = false;
      notice.textContent = m.message;
      return;
    }
    if (m.type === "gone") {
      health.className = "pill missing";
      health.textContent = "not up";
      notice.hidden = false;
      notice.textContent = m.message;
      return;
    }
    notice.hidden = true;
    if (m.type === "snapshot") status.apply({ rows: m.rows });
    else status.apply({ changed: m.changed, removed: m.removed });
    g.applyState(status.rows());
    health.className = `pill ${m.ok ? "present" : "drifted"}`;
    health.textContent = m.ok ? "healthy" : "drift";
    health.dataset.ok = String(m.ok);
    byId("updated").textContent = `state at ${new Date(m.at).toLocaleTimeString()}`;
  });
}

/** The lab's pushed state; reconnects while the view is shown. */
function liveState(lab: string, onMessage: (m: StateMessage) => void): void {
  let ws: WebSocket | null = null;
  let stopped = false;
  let retry: ReturnType<typeof setTimeout> | undefined;
  const connect = () => {
    ws = socket(`${labSocket(lab)}/state`);
    ws.onmessage = (ev) => onMessage(JSON.parse(String(ev.data)) as StateMessage);
    ws.onclose = () => {
      if (stopped) return;
      byId("updated").textContent = "disconnected from qnet ui; retrying…";
      retry = setTimeout(connect, 2000);
    };
  };
  connect();
  teardown.push(() => {
    stopped = true;
    clearTimeout(retry);
    ws?.close();
  });
}

async function route(config: UiConfig): Promise<void> {
  leave();
  const m = /^#\/lab\/(.+)$/.exec(location.hash);
  if (m) await showLab(decodeURIComponent(m[1]!));
  else if (!location.hash && config.initialLab)
    location.hash = `#/lab/${encodeURIComponent(config.initialLab)}`;
  else showLabs();
}

async function start(): Promise<void> {
  const config = await getJson<UiConfig>("/api/config");
  window.addEventListener("hashchange", () => void route(config));
  await route(config);
}

start().catch((e: unknown) => {
  document.body.replaceChildren(el("pre", {}, `qnet ui: ${(e as Error).message}`));
});
