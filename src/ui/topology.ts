// The page's graph of a lab (pure): the host, networks, VMs with their NICs, and forwards, with labels.
import { describeImpairment, isEmpty } from "../model/impair.js";
import type { Lab, Network, Vm } from "../model/lab.js";
import { netTitle } from "../render/diagram.js";
import type { GraphEdge, GraphNode, Topology } from "./protocol.js";

export const HOST_ID = "host";
export const vmId = (vm: string) => `vm:${vm}`;
export const netId = (net: string) => `net:${net}`;
export const nicId = (vm: string, index: number) => `nic:${vm}:${index}`;
/** The edge from a NIC to its network: where a tap's state shows. */
export const portId = (vm: string, index: number) => `port:${vm}:${index}`;
/** The edge from the host to a network (the gateway address, the uplink). */
export const gatewayId = (net: string) => `gw:${net}`;

function networkLabel(net: Network): string {
  switch (net.type) {
    case "bridge": {
      const extras = [net.dhcp ? "DHCP/DNS" : null, net.nat ? "NAT" : null].filter(Boolean);
      return [
        net.name,
        `bridge ${net.bridge} · ${net.subnet}`,
        ...(extras.length ? [extras.join(" · ")] : []),
      ].join("\n");
    }
    case "user":
      return `${net.name}\nuser networking · ${net.subnet}`;
    case "bridged":
      return `${net.name}\nbridge ${net.bridge} on the LAN via ${net.uplink}${net.mode === "macvtap" ? " (macvtap)" : ""}`;
  }
}

function vmDetails(vm: Vm): string[] {
  const g = vm.guest;
  const guest =
    g.kind === "builtin"
      ? "built-in guest"
      : g.kind === "kernel"
        ? `kernel ${g.kernel}`
        : g.kind === "disk"
          ? `disk ${g.disk}`
          : `image ${g.image.kind === "named" ? g.image.name : g.image.url}`;
  return [
    `${vm.memory} MiB, ${vm.cpus} vCPU${vm.cpus > 1 ? "s" : ""}, ${vm.qemu.machine}`,
    guest,
    ...(vm.user ? [`taps owned by ${vm.user}`] : []),
  ];
}

/** The graph of `lab`; `source` says whether it is a running lab or only a file. */
export function labTopology(
  lab: Lab,
  source: Topology["source"],
  opts: { file?: string | null; consoles?: string[] } = {},
): Topology {
  const nodes: GraphNode[] = [
    {
      id: HOST_ID,
      kind: "host",
      name: "host",
      label: lab.netns ? `host\nnetns ${lab.netns}` : "host",
      details: [`lab ${lab.name}`, lab.netns ? `network namespace ${lab.netns}` : "host namespace"],
    },
  ];
  const edges: GraphEdge[] = [];
  for (const net of lab.networks) {
    nodes.push({
      id: netId(net.name),
      kind: "network",
      name: net.name,
      label: networkLabel(net),
      netType: net.type,
      details: [netTitle(net)],
    });
    const hostEdge =
      net.type === "bridge"
        ? { kind: "gateway" as const, label: net.gateway ? `${net.gateway}/${net.prefix}` : "L2" }
        : net.type === "bridged"
          ? { kind: "uplink" as const, label: `uplink ${net.uplink}` }
          : { kind: "gateway" as const, label: `QEMU ${net.hostAddr}` };
    edges.push({ id: gatewayId(net.name), source: HOST_ID, target: netId(net.name), ...hostEdge });
    if (net.type === "bridged") continue;
    net.forwards.forEach((f, i) => {
      const id = `fwd:${net.name}:${i}`;
      const target = f.vm ? vmId(f.vm) : netId(net.name);
      nodes.push({
        id,
        kind: "forward",
        name: f.spec,
        label: `${f.proto} ${f.hostAddr}:${f.hostPort} → ${f.vm ? `${f.vm}:` : ""}${f.guestPort}`,
        details: [
          `forward ${f.spec} on ${net.name}`,
          f.vm
            ? `host ${f.hostAddr}:${f.hostPort} to ${f.vm} port ${f.guestPort}`
            : `host ${f.hostAddr}:${f.hostPort} to port ${f.guestPort} of every VM on ${net.name}`,
        ],
      });
      edges.push({ id: `${id}:to`, kind: "forward", source: id, target, label: "" });
    });
  }
  for (const vm of lab.vms) {
    nodes.push({
      id: vmId(vm.name),
      kind: "vm",
      name: vm.name,
      label: vm.name,
      details: vmDetails(vm),
    });
    for (const nic of vm.nics) {
      const addr =
        nic.networkType === "bridged"
          ? "DHCP from the LAN"
          : nic.ip
            ? `${nic.ip}${nic.prefix !== null ? `/${nic.prefix}` : ""}`
            : "no address";
      const impaired = isEmpty(nic.impair) ? null : describeImpairment(nic.impair);
      nodes.push({
        id: nicId(vm.name, nic.index),
        kind: "nic",
        name: String(nic.index),
        parent: vmId(vm.name),
        label: `${addr}\n${nic.mac}${impaired ? `\n${impaired}` : ""}`,
        details: [
          `NIC ${nic.index} on ${nic.network}: ${nic.model}`,
          `MAC ${nic.mac}`,
          `address ${addr}${nic.gateway ? `, gateway ${nic.gateway}` : ""}`,
          nic.tap ? `tap ${nic.tap}` : "QEMU user networking (no tap)",
          ...(impaired ? [`impaired: ${impaired} (both directions)`] : []),
        ],
      });
      edges.push({
        id: portId(vm.name, nic.index),
        kind: "port",
        source: nicId(vm.name, nic.index),
        target: netId(nic.network),
        label: nic.tap ?? "",
      });
    }
  }
  return {
    lab: lab.name,
    netns: lab.netns,
    source,
    file: opts.file ?? null,
    consoles: opts.consoles ?? [],
    nodes,
    edges,
  };
}
