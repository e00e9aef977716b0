// Checks /dev/net/tun, /dev/kvm and /dev/vhost-net: present, character devices, usable by QEMU's user.
import { join } from "node:path";
import type { Lab } from "../model/lab.js";
import type { CheckResult, DoctorContext } from "./types.js";
import {
  type Access,
  canReadWrite,
  groupName,
  type Identity,
  lookupUser,
  qemuUsers,
} from "./users.js";

interface DeviceSpec {
  id: string;
  rel: string;
  title: string;
  /** Whether the lab needs the device; a reason when it does not. */
  need: (lab: Lab | null) => true | string;
  /** Status when it is missing or unusable and needed. */
  severity: "fail" | "warn";
  /** What goes wrong without it. */
  without: string;
  loadFix: string;
}

const isVirtio = (m: string) => m.startsWith("virtio-net");

const DEVICES: DeviceSpec[] = [
  {
    id: "dev.tun",
    rel: "net/tun",
    title: "/dev/net/tun",
    need: (lab) =>
      !lab || lab.networks.some((n) => n.type !== "user")
        ? true
        : "the lab only uses user networks, which need no tap",
    severity: "fail",
    without: "QEMU cannot open the lab's tap devices",
    loadFix: "modprobe tun",
  },
  {
    id: "dev.kvm",
    rel: "kvm",
    title: "/dev/kvm",
    need: () => true,
    severity: "warn",
    without: "QEMU falls back to TCG emulation, many times slower",
    loadFix: "modprobe kvm_intel || modprobe kvm_amd  (and enable virtualization in the firmware)",
  },
  {
    id: "dev.vhost-net",
    rel: "vhost-net",
    title: "/dev/vhost-net",
    need: (lab) =>
      !lab || lab.vms.some((v) => v.nics.some((n) => n.networkType !== "user" && isVirtio(n.model)))
        ? true
        : "no virtio-net NIC on a tap in the lab, so vhost is not used",
    severity: "warn",
    without: "virtio-net runs without vhost acceleration (slower, but it works)",
    loadFix: "modprobe vhost_net",
  },
];

function describe(user: string | null): string {
  return user ?? "the current user";
}

async function checkDevice(ctx: DoctorContext, d: DeviceSpec): Promise<CheckResult> {
  const path = join(ctx.env.devRoot, d.rel);
  const base = { id: d.id, title: d.title };
  const need = d.need(ctx.lab);
  const users = qemuUsers(ctx.lab);
  const problems: string[] = [];
  const fixes: string[] = [];
  for (const user of users) {
    let who: Identity | null = null;
    if (user !== null) {
      who = await lookupUser(ctx.runner, user);
      if (!who) {
        problems.push(`user ${user} (who runs QEMU) does not exist`);
        fixes.push(`useradd ${user}  (or change \`user\` in the topology)`);
        continue;
      }
    }
    const a: Access = await canReadWrite(path, who, true);
    if (a.ok) continue;
    if (a.reason === "missing" || a.reason === "not-char") {
      const what = a.reason === "missing" ? "does not exist" : "is not a character device";
      const status = need === true ? d.severity : "pass";
      return {
        ...base,
        status,
        detail:
          need === true
            ? `${path} ${what}, so ${d.without}.`
            : `${path} ${what}, which is fine: ${need}.`,
        ...(need === true ? { fix: d.loadFix } : {}),
      };
    }
    const group = a.gid !== undefined ? await groupName(ctx.runner, a.gid) : "?";
    problems.push(
      `${describe(user)} cannot read and write ${path} (mode ${a.mode?.toString(8).padStart(4, "0")}, group ${group})`,
    );
    fixes.push(
      user === null
        ? `usermod -aG ${group} "$USER"  (then log in again)`
        : `usermod -aG ${group} ${user}`,
    );
  }
  if (problems.length === 0) {
    const who = users.map(describe).join(", ");
    return { ...base, status: "pass", detail: `${path} is present and usable by ${who}.` };
  }
  return {
    ...base,
    status: need === true ? d.severity : "pass",
    detail: `${problems.join("; ")}, so ${need === true ? d.without : `nothing breaks: ${need}`}.`,
    ...(need === true ? { fix: fixes.join("; ") } : {}),
  };
}

export async function checkDevices(ctx: DoctorContext): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const d of DEVICES) out.push(await checkDevice(ctx, d));
  return out;
}
