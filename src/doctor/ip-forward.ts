// Checks net.ipv4.ip_forward when the lab routes: NAT out of a bridge network, or forwards into one.
import { join } from "node:path";
import { probe } from "./run.js";
import type { CheckResult, DoctorContext } from "./types.js";

export async function checkIpForward(ctx: DoctorContext): Promise<CheckResult[]> {
  const base = { id: "ip-forward", title: "net.ipv4.ip_forward" };
  const where = ctx.runner.netns ? ` in namespace ${ctx.runner.netns}` : "";
  const r = await probe(ctx.runner, ["cat", join(ctx.env.procRoot, "sys/net/ipv4/ip_forward")]);
  if (!r.ok)
    return [{ ...base, status: "skip", detail: `net.ipv4.ip_forward could not be read${where}.` }];
  const on = r.stdout.trim() === "1";
  const needers = (ctx.lab?.networks ?? []).flatMap((n) =>
    n.type === "bridge" && (n.nat || n.forwards.length > 0)
      ? [
          `${n.name} (${[n.nat ? "NAT" : "", n.forwards.length ? "forwards" : ""].filter(Boolean).join(" and ")})`,
        ]
      : [],
  );
  if (on) return [{ ...base, status: "pass", detail: `IPv4 forwarding is on${where}.` }];
  if (!ctx.lab) {
    return [
      {
        ...base,
        status: "warn",
        detail: `IPv4 forwarding is off${where}: bridge networks with NAT or forwards will not route.`,
        fix: "sysctl -w net.ipv4.ip_forward=1",
      },
    ];
  }
  if (needers.length === 0) {
    return [
      {
        ...base,
        status: "pass",
        detail: `IPv4 forwarding is off${where}, and no network of the lab routes through the host.`,
      },
    ];
  }
  return [
    {
      ...base,
      // `qnet up` turns it on for the lab (and restores it on down): only a running lab without it is broken.
      status: "warn",
      detail: `IPv4 forwarding is off${where}, but network ${needers.join(", ")} routes through the host: \`qnet up\` turns it on (and restores it on down); if the lab is up already, its VMs cannot reach out and forwards cannot reach them.`,
      fix: "sysctl -w net.ipv4.ip_forward=1  (persistently: echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-qnet-forward.conf)",
    },
  ];
}
