// What the `qnet ui` server and its page say to each other (types only: the page imports this file too).

export type NodeKind = "host" | "network" | "vm" | "nic" | "forward";
export type EdgeKind = "port" | "gateway" | "uplink" | "forward";

export interface GraphNode {
  /** Unique in the graph: "vm:<name>", "net:<name>", "nic:<vm>:<index>", "fwd:<net>:<i>", "host". */
  id: string;
  kind: NodeKind;
  /** The object's own name (VM, network, NIC index), for lookups. */
  name: string;
  /** What the graph writes on the node (may span lines). */
  label: string;
  /** Compound parent (a NIC's VM). */
  parent?: string;
  /** Network type, for the network's style. */
  netType?: "user" | "bridge" | "bridged";
  /** Facts shown when the node is selected, one per line. */
  details: string[];
}

export interface GraphEdge {
  id: string;
  kind: EdgeKind;
  source: string;
  target: string;
  label: string;
}

/** A lab's topology as the page draws it. */
export interface Topology {
  lab: string;
  netns: string | null;
  /** "live": a lab that is up (state, checks, consoles); "file": drawn from a topology file only. */
  source: "live" | "file";
  file: string | null;
  /** The VMs qnet starts (none for a lab brought up with --no-vms). */
  consoles: string[];
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export type ObjectState = "present" | "missing" | "drifted";

/** One object of `qnet status`, with the graph element it belongs to. */
export interface StatusRow {
  /** "<kind>:<name>", unique in a lab. */
  key: string;
  kind: string;
  name: string;
  state: ObjectState;
  detail: string;
  /** The graph node or edge this object is part of (null: the lab as a whole). */
  element: string | null;
  /** VM rows: the IPv4 addresses each NIC holds ("a.b.c.d/p"), by NIC index; null when unknown. */
  addresses?: Record<number, string[]> | null;
}

/** A lab in the list of labs. */
export interface LabSummary {
  name: string;
  netns: string | null;
  file: string | null;
  /** "up": lab.json exists; "incomplete": a state directory without a record; "file": a topology file. */
  state: "up" | "incomplete" | "file";
}

/** Messages on /ws/labs/<lab>/state, server to page. */
export type StateMessage =
  | { type: "snapshot"; at: string; generation: string; ok: boolean; rows: StatusRow[] }
  | {
      type: "diff";
      at: string;
      generation: string;
      ok: boolean;
      changed: StatusRow[];
      removed: string[];
    }
  | { type: "gone"; at: string; message: string }
  /** `status` itself failed (the next refresh tries again). */
  | { type: "error"; at: string; message: string }
  | { type: "check"; phase: "running" }
  | { type: "check"; phase: "done"; report: CheckView }
  | { type: "check"; phase: "failed"; message: string };

/** Text (control) messages on /ws/labs/<lab>/consoles/<vm>; binary frames carry the console's bytes. */
export type ConsoleMessage =
  | { type: "role"; writer: boolean; message: string }
  | { type: "closed"; message: string };

/** Messages on /ws/labs: the lab list whenever it changes. */
export type LabsMessage = { type: "labs"; labs: LabSummary[] };

/** GET /api/config */
export interface UiConfig {
  /** The lab named on the command line (or the file's lab), else null: the page lists the labs. */
  initialLab: string | null;
  /** "file": the server shows one topology file; "labs": the labs under the state root. */
  mode: "file" | "labs";
}

export type PairStatus = "pass" | "fail" | "warn" | "skip";

/** One probe of `qnet check` as the page draws it. */
export interface CheckPairView {
  id: string;
  /** vm-vm, vm-gateway, host-vm, forward, nat. */
  kind: string;
  /** A VM, or "host". */
  from: string;
  /** A VM, "gateway", or what a forward or NAT probe reaches. */
  to: string;
  /** A short name of the target for the matrix's column. */
  column: string;
  network: string | null;
  address: string;
  status: PairStatus;
  latencyMs: number | null;
  detail: string;
  /** Failures: the most likely cause. */
  cause: string | null;
}

/** POST /api/labs/<lab>/check: the result of `qnet check`. */
export interface CheckView {
  lab: string;
  ok: boolean;
  summary: Record<PairStatus, number>;
  pairs: CheckPairView[];
  /** doctor's findings, when failures made check look. */
  doctor: { id: string; status: string; detail: string; fix?: string }[];
}
