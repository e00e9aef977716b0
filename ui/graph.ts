// The topology graph: cytoscape.js with the fCoSE automatic layout; VMs hold their NICs, states colour it.
import cytoscape, { type Core, type ElementDefinition, type StylesheetJson } from "cytoscape";
import fcose from "cytoscape-fcose";
import type { GraphNode, StatusRow, Topology } from "../src/ui/protocol";

cytoscape.use(fcose);

const COLORS = {
  present: "#16a34a",
  missing: "#dc2626",
  drifted: "#ea580c",
  unknown: "#94a3b8",
};

const NET_COLORS: Record<string, string> = {
  bridge: "#0284c7",
  user: "#7c3aed",
  bridged: "#b45309",
};

/** Rough label size (the layout needs node sizes before anything is drawn). */
function size(label: string, fontPx: number): { w: number; h: number } {
  const lines = label.split("\n");
  const longest = Math.max(...lines.map((l) => l.length));
  return { w: Math.ceil(longest * fontPx * 0.62) + 18, h: lines.length * (fontPx + 4) + 12 };
}

const FONT: Record<GraphNode["kind"], number> = {
  host: 12,
  network: 12,
  vm: 13,
  nic: 10,
  forward: 10,
};

function elements(t: Topology): ElementDefinition[] {
  const nodes: ElementDefinition[] = t.nodes.map((n) => {
    const s = size(n.label, FONT[n.kind]);
    return {
      group: "nodes",
      data: {
        id: n.id,
        kind: n.kind,
        name: n.name,
        label: n.label,
        netType: n.netType ?? "",
        w: s.w,
        h: s.h,
        state: t.source === "live" ? "unknown" : "static",
        ...(n.parent ? { parent: n.parent } : {}),
      },
    };
  });
  const edges: ElementDefinition[] = t.edges.map((e) => ({
    group: "edges",
    data: {
      id: e.id,
      kind: e.kind,
      source: e.source,
      target: e.target,
      label: e.label,
      state: "static",
    },
  }));
  return [...nodes, ...edges];
}

const style: StylesheetJson = [
  {
    selector: "node",
    style: {
      label: "data(label)",
      "text-wrap": "wrap",
      "text-valign": "center",
      "text-halign": "center",
      "font-family": "DejaVu Sans, sans-serif",
      "font-size": 12,
      shape: "round-rectangle",
      width: "data(w)",
      height: "data(h)",
      "border-width": 2,
      "border-color": "#475569",
      "background-color": "#e2e8f0",
      color: "#0f172a",
    },
  },
  {
    selector: 'node[kind="host"]',
    style: { "background-color": "#1e293b", color: "#f8fafc", "border-color": "#1e293b" },
  },
  {
    selector: 'node[kind="network"]',
    style: {
      "background-color": (n: cytoscape.NodeSingular) => NET_COLORS[n.data("netType")] ?? "#0284c7",
      color: "#fff",
      "border-width": 3,
    },
  },
  {
    selector: 'node[kind="vm"]',
    style: {
      "background-color": "#f8fafc",
      "background-opacity": 0.9,
      "border-width": 4,
      "text-valign": "top",
      "text-halign": "center",
      "text-margin-y": -4,
      "font-size": 13,
      "font-weight": "bold",
      padding: "10px",
    },
  },
  {
    selector: 'node[kind="nic"]',
    style: {
      "font-size": 10,
      "font-family": "DejaVu Sans Mono, monospace",
      "background-color": "#fff",
    },
  },
  {
    selector: 'node[kind="forward"]',
    style: {
      shape: "tag",
      "font-size": 10,
      "background-color": "#fef3c7",
      "border-color": "#b45309",
    },
  },
  {
    selector: "edge",
    style: {
      width: 2,
      "line-color": "#64748b",
      "curve-style": "bezier",
      label: "data(label)",
      "font-size": 9,
      "font-family": "DejaVu Sans Mono, monospace",
      "text-background-color": "#fff",
      "text-background-opacity": 0.85,
      "text-background-padding": "1px",
      // Too small to read: not drawn (a zoomed-out big lab).
      "min-zoomed-font-size": 6,
    },
  },
  { selector: 'edge[kind="forward"]', style: { "line-style": "dashed", "line-color": "#b45309" } },
  { selector: 'edge[kind="uplink"]', style: { "line-style": "dotted" } },
  { selector: 'node[state="present"]', style: { "border-color": COLORS.present } },
  { selector: 'node[state="missing"]', style: { "border-color": COLORS.missing } },
  { selector: 'node[state="drifted"]', style: { "border-color": COLORS.drifted } },
  { selector: 'node[kind="vm"][state="unknown"]', style: { "border-color": COLORS.unknown } },
  {
    selector: 'node[kind="vm"][state="missing"]',
    style: { "background-color": "#fee2e2", "border-style": "dashed" },
  },
  {
    selector: 'node[kind="network"][state="missing"], node[kind="network"][state="drifted"]',
    style: { "border-color": "#fff", "background-color": COLORS.missing },
  },
  { selector: 'edge[state="present"]', style: { "line-color": COLORS.present } },
  {
    selector: 'edge[state="missing"]',
    style: { "line-color": COLORS.missing, "line-style": "dashed" },
  },
  { selector: 'edge[state="drifted"]', style: { "line-color": COLORS.drifted } },
  {
    selector: ":selected",
    style: { "overlay-color": "#38bdf8", "overlay-opacity": 0.25, "overlay-padding": 4 },
  },
];

const RANK: Record<string, number> = { present: 0, unknown: 1, drifted: 2, missing: 3 };

export interface Graph {
  cy: Core;
  /** Resolves once the first layout is drawn on screen. */
  drawn: Promise<void>;
  /** Colour each element by the worst state of the status objects that belong to it. */
  applyState(rows: StatusRow[]): void;
  select(id: string): void;
  destroy(): void;
}

export function drawGraph(
  container: HTMLElement,
  topology: Topology,
  onSelect: (node: GraphNode | null) => void,
): Graph {
  const cy = cytoscape({
    container,
    elements: elements(topology),
    style,
    minZoom: 0.05,
    maxZoom: 3,
  });
  const byId = new Map(topology.nodes.map((n) => [n.id, n]));
  cy.on("tap", (ev) => {
    const t = ev.target;
    if (t === cy) onSelect(null);
    else if (t.isNode?.()) onSelect(byId.get(t.id()) ?? null);
  });
  // Until the person zooms or pans, the graph follows the size of its pane (a console opening, say).
  let moved = false;
  cy.on("scrollzoom dragpan pinchzoom", () => {
    moved = true;
  });
  const fit = () => {
    cy.fit(undefined, 30);
    // A small lab would fill the screen with giant boxes.
    if (cy.zoom() > 1.4) {
      cy.zoom(1.4);
      cy.center();
    }
  };
  const resize = new ResizeObserver(() => {
    cy.resize();
    if (!moved) fit();
  });
  resize.observe(container);
  const drawn = new Promise<void>((resolve) => {
    cy.one("layoutstop", () => {
      fit();
      // The next frame shows the laid-out graph.
      requestAnimationFrame(() => requestAnimationFrame(() => resolve()));
    });
  });
  const big = topology.nodes.length > 40;
  cy.layout({
    name: "fcose",
    animate: false,
    quality: "default",
    randomize: true,
    nodeDimensionsIncludeLabels: true,
    // Long edges and strong repulsion keep a big star (100 VMs on one bridge) free of overlaps.
    idealEdgeLength: () => (big ? 250 : 70),
    nodeRepulsion: () => (big ? 100_000 : 6500),
    packComponents: true,
  } as cytoscape.LayoutOptions).run();

  return {
    cy,
    drawn,
    applyState(rows) {
      const worst = new Map<string, string>();
      for (const r of rows) {
        if (!r.element) continue;
        const now = worst.get(r.element);
        if (!now || (RANK[r.state] ?? 0) > (RANK[now] ?? 0)) worst.set(r.element, r.state);
      }
      cy.batch(() => {
        cy.elements().forEach((e) => {
          const kind = e.data("kind");
          if (kind === "nic" || kind === "forward") return;
          // A VM without a status object was not started by qnet (up --no-vms).
          const s =
            worst.get(e.id()) ?? (kind === "vm" ? "unknown" : e.isEdge() ? "static" : "present");
          if (e.data("state") !== s) e.data("state", s);
        });
      });
    },
    select(id) {
      cy.$(":selected").unselect();
      const e = cy.getElementById(id);
      if (e.nonempty()) {
        e.select();
        cy.animate({ center: { eles: e } }, { duration: 200 });
      }
    },
    destroy() {
      resize.disconnect();
      cy.destroy();
    },
  };
}
