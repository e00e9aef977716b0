// The web view's one door into the library: lab lists, records, status, check and console paths.
// Every call into the engine (and every assumption about the shape of its results) lives here.
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { labStateDir, listLabs, readLabRecord, recordNetns } from "../host/state.js";
import { captureNic } from "../lab/capture.js";
import { type CheckReport, checkLab } from "../lab/check.js";
import { fullStatus, type StatusObject } from "../lab/status.js";
import type { Lab } from "../model/lab.js";
import { isName } from "../model/names.js";
import { vmFiles } from "../model/paths.js";
import type { CheckView, LabSummary, StatusRow, Topology } from "./protocol.js";
import { gatewayId, HOST_ID, labTopology, netId, portId, vmId } from "./topology.js";

export type StatusResult =
  | { gone: false; generation: string; ok: boolean; rows: StatusRow[] }
  | { gone: true; message: string };

export interface SerialPaths {
  socket: string;
  log: string;
  /** QEMU's pidfile (to see who else QEMU serves on the socket). */
  pidfile: string;
}

/** What the server needs to know about labs, from the state root or from one topology file. */
export interface LabFacts {
  readonly mode: "labs" | "file";
  list(): LabSummary[];
  /** The graph of a lab, or null when there is no such lab. */
  topology(lab: string): Topology | null;
  status(lab: string): Promise<StatusResult>;
  check(lab: string): Promise<CheckView>;
  /** The serial console of a VM that qnet started, or null. */
  serial(lab: string, vm: string): SerialPaths | null;
  /** A pcap of one VM NIC: `count` frames or `seconds` of traffic, whichever ends first. */
  capture(
    lab: string,
    vm: string,
    nic: number,
    o: { count: number; seconds: number },
  ): Promise<Buffer>;
}

/** The graph element a status object belongs to (by the names the lab record gives). */
export function elementOf(lab: Lab, o: { kind: string; name: string }): string | null {
  switch (o.kind) {
    case "vm":
      return lab.vms.some((v) => v.name === o.name) ? vmId(o.name) : null;
    case "dnsmasq":
      return lab.networks.some((n) => n.name === o.name) ? netId(o.name) : null;
    case "bridge":
    case "uplink":
    case "address": {
      // An address object is named "<a.b.c.d/p> on <bridge>": the host's side of that network.
      const bridge = o.kind === "address" ? o.name.split(" on ").at(-1) : o.name;
      const net = lab.networks.find((n) => n.type !== "user" && n.bridge === bridge);
      if (!net) return HOST_ID;
      return o.kind === "address" ? gatewayId(net.name) : netId(net.name);
    }
    case "tap":
    case "macvtap":
    case "impair": // named by its tap
      for (const vm of lab.vms)
        for (const nic of vm.nics) if (nic.tap === o.name) return portId(vm.name, nic.index);
      return null;
    case "netns":
    case "module":
    case "sysctl":
    case "nft-table":
    case "firewall":
    case "hosts":
    case "nm-unmanaged":
      return HOST_ID;
    default:
      return null;
  }
}

/** The matrix column of a pair: the VM it reaches, the gateway, a forward or a NAT target. */
function column(p: CheckReport["pairs"][number]): string {
  switch (p.kind) {
    case "vm-gateway":
      return "gateway";
    case "forward":
      return p.forward ? `${p.forward.proto} :${p.forward.hostPort}` : `forward ${p.address}`;
    case "nat":
      return `NAT ${p.address}`;
    default:
      return p.to;
  }
}

export function checkView(r: CheckReport): CheckView {
  return {
    lab: r.lab,
    ok: r.ok,
    summary: r.summary,
    pairs: r.pairs.map((p) => ({
      id: p.id,
      kind: p.kind,
      from: p.from,
      to: p.to,
      column: column(p),
      network: p.network,
      address: p.address,
      status: p.status,
      latencyMs: p.latencyMs,
      detail: p.detail,
      cause: p.cause,
    })),
    doctor: r.doctor,
  };
}

export function statusRows(lab: Lab, objects: StatusObject[]): StatusRow[] {
  return objects.map((o) => {
    const row: StatusRow = {
      key: `${o.kind}:${o.name}`,
      kind: o.kind,
      name: o.name,
      state: o.state,
      detail: o.detail,
      element: elementOf(lab, o),
    };
    if (o.kind === "vm") {
      row.addresses = o.addresses
        ? Object.fromEntries(o.addresses.map((a) => [a.nic, a.ipv4]))
        : null;
    }
    return row;
  });
}

/** Labs under a state root (/run/qnet): the live view. */
export function stateRootFacts(stateRoot: string): LabFacts {
  const dirOf = (lab: string) => (isName(lab) ? labStateDir(stateRoot, lab) : null);
  const record = (lab: string) => {
    const dir = dirOf(lab);
    const rec = dir ? readLabRecord(dir) : null;
    return dir && rec ? { dir, rec } : null;
  };
  return {
    mode: "labs",
    list: () =>
      listLabs(stateRoot).map((l) => ({
        name: l.name,
        netns: l.netns,
        file: l.file,
        state: l.complete ? "up" : "incomplete",
      })),
    topology(lab) {
      const r = record(lab);
      if (!r) return null;
      const consoles = r.rec.options?.noVms === true ? [] : r.rec.lab.vms.map((v) => v.name);
      return labTopology({ ...r.rec.lab, netns: recordNetns(r.rec) }, "live", {
        file: r.rec.file ?? null,
        consoles,
      });
    },
    async status(lab) {
      const r = record(lab);
      if (!r) return { gone: true, message: `lab ${lab} is not up` };
      try {
        const s = await fullStatus(r.dir);
        return {
          gone: false,
          generation: r.rec.createdAt,
          ok: s.ok,
          rows: statusRows(r.rec.lab, s.objects),
        };
      } catch (e) {
        // `down` removed the record while we read: the lab went away.
        if (!existsSync(r.dir) || !readLabRecord(r.dir))
          return { gone: true, message: `lab ${lab} went down` };
        throw e;
      }
    },
    async check(lab) {
      const r = record(lab);
      if (!r) throw new Error(`lab ${lab} is not up`);
      return checkView(await checkLab(r.dir));
    },
    serial(lab, vm) {
      const r = record(lab);
      if (!r || r.rec.options?.noVms === true || !r.rec.lab.vms.some((v) => v.name === vm))
        return null;
      const f = vmFiles(r.dir, vm);
      return { socket: f.serial, log: f.serialLog, pidfile: f.pidfile };
    },
    async capture(lab, vm, nic, o) {
      const r = record(lab);
      if (!r) throw new Error(`lab ${lab} is not up`);
      // tcpdump writes a file (it runs inside the lab's namespace); the page gets it whole.
      const dir = mkdtempSync(join(tmpdir(), "qnet-ui-capture-"));
      const file = join(dir, "capture.pcap");
      try {
        await captureNic(r.dir, `${vm}:${nic}`, {
          write: file,
          count: o.count,
          stop: new Promise((res) => setTimeout(res, o.seconds * 1000).unref()),
        });
        return readFileSync(file);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

/** One topology file, drawn without live state (nothing of it needs to run). */
export function topologyFileFacts(lab: Lab, file: string): LabFacts {
  const topo = labTopology(lab, "file", { file });
  return {
    mode: "file",
    list: () => [{ name: lab.name, netns: lab.netns, file, state: "file" }],
    topology: (name) => (name === lab.name ? topo : null),
    status: async () => ({ gone: true, message: `${file} is a topology file, not a running lab` }),
    check: async () => {
      throw new Error(`${file} is a topology file, not a running lab: bring it up to check it`);
    },
    serial: () => null,
    capture: async () => {
      throw new Error(`${file} is a topology file, not a running lab: bring it up to capture`);
    },
  };
}
