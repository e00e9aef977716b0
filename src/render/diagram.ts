// Diagrams of a lab: ASCII in the spirit of the seed's pictures, Mermaid and Graphviz DOT.
import { describeImpairment } from "../model/impair.js";
import type { Lab, Network, Nic, Vm } from "../model/lab.js";

/** Live facts for a running lab (optional): per VM whether it runs and the addresses it holds. */
export interface LiveState {
  vms: Record<string, { running: boolean; addresses: string[] }>;
}

interface Port {
  vm: Vm;
  nic: Nic;
}

function portsOf(lab: Lab, net: Network): Port[] {
  return lab.vms.flatMap((vm) =>
    vm.nics.filter((n) => n.network === net.name).map((nic) => ({ vm, nic })),
  );
}

export function netTitle(net: Network): string {
  switch (net.type) {
    case "user":
      return `${net.name}: user networking ${net.subnet} (one QEMU stack per VM, gateway ${net.hostAddr})`;
    case "bridge": {
      const extras = [net.dhcp ? "DHCP/DNS" : null, net.nat ? "NAT" : null]
        .filter(Boolean)
        .join(", ");
      return `${net.name}: bridge ${net.bridge} ${net.gateway ? `${net.gateway}/${net.prefix}` : "(no host address)"} on ${net.subnet}${extras ? ` [${extras}]` : ""}`;
    }
    case "bridged":
      return `${net.name}: bridge ${net.bridge} on the LAN via ${net.uplink}${net.mode === "macvtap" ? " (macvtap: the host cannot reach these VMs)" : ""}`;
  }
}

function vmLabel(p: Port, live?: LiveState): string {
  const addr = p.nic.networkType === "bridged" ? "DHCP from the LAN" : (p.nic.ip ?? "");
  let state = "";
  if (live) {
    const v = live.vms[p.vm.name];
    state = v
      ? ` [${v.running ? "up" : "down"}${v.addresses.length ? ` ${v.addresses.join(" ")}` : ""}]`
      : " [unknown]";
  }
  const impair = p.nic.impair ? `  impaired: ${describeImpairment(p.nic.impair)}` : "";
  return `${p.vm.name}  ${addr}  ${p.nic.mac}  ${p.nic.model}${impair}${state}`;
}

/** ASCII art: the host, each network with its bridge, taps and VMs. */
export function renderAscii(lab: Lab, live?: LiveState): string {
  const lines = [`host${lab.netns ? ` (network namespace ${lab.netns})` : ""}: lab ${lab.name}`];
  for (const net of lab.networks) {
    lines.push(`│`, `├─ ${netTitle(net)}`);
    const ports = portsOf(lab, net);
    const rows: string[] = [];
    if (net.type === "bridged") rows.push(`${net.uplink} ── LAN`);
    for (const p of ports) {
      rows.push(p.nic.tap ? `${p.nic.tap} ── ${vmLabel(p, live)}` : vmLabel(p, live));
    }
    if (net.type !== "bridged") {
      for (const f of net.forwards) {
        rows.push(
          `forward ${f.proto} ${f.hostAddr}:${f.hostPort} → ${f.vm ?? "each VM"}:${f.guestPort}`,
        );
      }
    }
    if (rows.length === 0) rows.push("(no VM)");
    rows.forEach((r, i) => {
      lines.push(`│   ${i === rows.length - 1 ? "└─" : "├─"} ${r}`);
    });
  }
  const lonely = lab.vms.filter((v) => v.nics.length === 0);
  for (const vm of lonely) lines.push("│", `├─ ${vm.name} (no network)`);
  return `${lines.join("\n")}\n`;
}

const mermaidText = (s: string) => s.replace(/["<>]/g, "'");

export function renderMermaid(lab: Lab, live?: LiveState): string {
  // Ids by position: names like a-b and a_b must not share a node.
  const vmId = new Map(lab.vms.map((v, i) => [v.name, `vm${i}`]));
  const lines = ["flowchart LR", `  host["host: lab ${mermaidText(lab.name)}"]`];
  lab.vms.forEach((vm) => {
    const v = live?.vms[vm.name];
    const state = live
      ? v
        ? ` [${v.running ? "up" : "down"}${v.addresses.length ? ` ${v.addresses.join(" ")}` : ""}]`
        : " [unknown]"
      : "";
    lines.push(`  ${vmId.get(vm.name)}["${mermaidText(`${vm.name}${state}`)}"]`);
  });
  lab.networks.forEach((net, i) => {
    const nid = `net${i}`;
    lines.push(`  ${nid}["${mermaidText(netTitle(net))}"]`, `  host --- ${nid}`);
    for (const p of portsOf(lab, net)) {
      const addr = p.nic.networkType === "bridged" ? "DHCP" : (p.nic.ip ?? "");
      const impair = p.nic.impair ? `impaired: ${describeImpairment(p.nic.impair)}` : "";
      const label = [p.nic.tap, addr, p.nic.mac, impair].filter(Boolean).join(" ");
      lines.push(`  ${nid} -- "${mermaidText(label)}" --- ${vmId.get(p.vm.name)}`);
    }
  });
  return `${lines.join("\n")}\n`;
}

const dotText = (s: string) => s.replaceAll("\\", "\\\\").replaceAll('"', '\\"');

export function renderDot(lab: Lab, live?: LiveState): string {
  const lines = [
    `graph "${dotText(lab.name)}" {`,
    "  rankdir=LR;",
    `  "host" [shape=box,label="host: lab ${dotText(lab.name)}"];`,
  ];
  for (const net of lab.networks) {
    const nid = `net:${net.name}`;
    lines.push(
      `  "${dotText(nid)}" [shape=ellipse,label="${dotText(netTitle(net))}"];`,
      `  "host" -- "${dotText(nid)}";`,
    );
    for (const p of portsOf(lab, net)) {
      const vid = `vm:${p.vm.name}`;
      lines.push(
        `  "${dotText(vid)}" [shape=box,label="${dotText(p.vm.name)}"];`,
        `  "${dotText(nid)}" -- "${dotText(vid)}" [label="${dotText(vmLabel(p, live))}"];`,
      );
    }
  }
  lines.push("}");
  return `${lines.join("\n")}\n`;
}
