// Doctor's rootless section: what a normal user's lab needs of the host (user namespaces allowed, the tun
// device, pasta or slirp4netns, a kernel the built-in guest can read), each finding with its exact fix.
import { constants } from "node:fs";
import { access, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { pickKernel } from "../guest/build.js";
import { findProgram } from "../host/programs.js";
import { probe } from "./run.js";
import type { CheckResult, DoctorContext } from "./types.js";

const read = (path: string) =>
  readFile(path, "utf8").then(
    (t) => t.trim(),
    () => null,
  );

/** Ubuntu's AppArmor profile that lets util-linux's unshare (which qnet runs) create user namespaces. */
export const APPARMOR_PROFILE = `abi <abi/4.0>,
include <tunables/global>
profile qnet-unshare /usr/bin/unshare flags=(unconfined) {
  userns,
  include if exists <local/qnet-unshare>
}
`;

/** The sysctls that allow or forbid unprivileged user namespaces (pure: their values given). */
export function usernsFindings(v: {
  maxUserNamespaces: string | null;
  unprivilegedClone: string | null;
  apparmorRestrict: string | null;
}): CheckResult[] {
  const base = { id: "rootless.userns", title: "rootless: unprivileged user namespaces" };
  const out: CheckResult[] = [];
  if (v.maxUserNamespaces === "0")
    out.push({
      ...base,
      status: "fail",
      detail:
        "user.max_user_namespaces is 0: no user may create a user namespace, so rootless labs cannot start.",
      fix: "sysctl -w user.max_user_namespaces=15000  (persistently: echo user.max_user_namespaces=15000 > /etc/sysctl.d/90-qnet-userns.conf)",
    });
  if (v.unprivilegedClone === "0")
    out.push({
      ...base,
      id: "rootless.userns.debian",
      status: "fail",
      detail:
        "kernel.unprivileged_userns_clone is 0 (Debian's switch): only root may create user namespaces.",
      fix: "sysctl -w kernel.unprivileged_userns_clone=1  (persistently: echo kernel.unprivileged_userns_clone=1 > /etc/sysctl.d/90-qnet-userns.conf)",
    });
  if (v.apparmorRestrict === "1")
    out.push({
      ...base,
      id: "rootless.userns.apparmor",
      status: "warn",
      detail:
        "kernel.apparmor_restrict_unprivileged_userns is 1 (Ubuntu 24.04): a user namespace made by a program without an AppArmor profile that allows it cannot change its network, so rootless labs fail unless unshare has one.",
      fix: `write /etc/apparmor.d/qnet-unshare with:\n${APPARMOR_PROFILE}then: apparmor_parser -r /etc/apparmor.d/qnet-unshare  (or, for every program: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0)`,
    });
  return out;
}

async function checkUserns(ctx: DoctorContext): Promise<CheckResult[]> {
  const sys = (k: string) => read(join(ctx.env.procRoot, "sys", k));
  const findings = usernsFindings({
    maxUserNamespaces: await sys("user/max_user_namespaces"),
    unprivilegedClone: await sys("kernel/unprivileged_userns_clone"),
    apparmorRestrict: await sys("kernel/apparmor_restrict_unprivileged_userns"),
  });
  if (findings.some((f) => f.status === "fail")) return findings;
  // The proof: what `qnet up` does first, as whoever runs doctor, in a namespace that goes away at once.
  const uid = process.getuid?.() ?? 0;
  const r = await probe(
    ctx.runner,
    [
      "unshare",
      "--user",
      "--map-root-user",
      "--net",
      "--",
      "ip",
      "link",
      "add",
      "qnprobe0",
      "type",
      "bridge",
    ],
    { hostNamespace: true },
  );
  if (r.ok)
    return [
      ...findings,
      {
        id: "rootless.userns",
        title: "rootless: unprivileged user namespaces",
        status: "pass",
        detail: `uid ${uid} can create a user and network namespace and a bridge in it (unshare --user --map-root-user --net)${uid === 0 ? "; run doctor as the user to check for them" : ""}.`,
      },
    ];
  return [
    ...findings,
    {
      id: "rootless.userns",
      title: "rootless: unprivileged user namespaces",
      status: "fail",
      detail: `uid ${uid} cannot create a user and network namespace with a bridge in it: ${(r.stderr.trim().split("\n")[0] ?? "") || `exit ${r.exitCode}`}.`,
      fix: r.missing
        ? "apt-get install util-linux iproute2"
        : "check the sysctls above; on Ubuntu 24.04 see rootless.userns.apparmor; inside a container, the container runtime may forbid nested user namespaces (seccomp)",
    },
  ];
}

async function checkTun(ctx: DoctorContext): Promise<CheckResult[]> {
  const base = { id: "rootless.tun", title: "rootless: /dev/net/tun" };
  const path = join(ctx.env.devRoot, "net/tun");
  const st = await stat(path).catch(() => null);
  if (!st)
    return [
      {
        ...base,
        status: "fail",
        detail: `${path} does not exist: no tap can be made, as root or not.`,
        fix: "modprobe tun  (in a container: pass the device in, e.g. --device /dev/net/tun)",
      },
    ];
  const ok = await access(path, constants.R_OK | constants.W_OK).then(
    () => true,
    () => false,
  );
  const everyone = (st.mode & 0o006) === 0o006;
  if (ok && everyone)
    return [
      {
        ...base,
        status: "pass",
        detail: `${path} is open to every user (the taps of rootless labs).`,
      },
    ];
  return [
    {
      ...base,
      status: "fail",
      detail: `${path} is mode ${(st.mode & 0o777).toString(8)}: a normal user cannot open it, so a rootless lab's QEMU cannot attach its taps.`,
      fix: `chmod 0666 ${path}  (its default on Debian and Ubuntu; persistently: a udev rule KERNEL=="tun", MODE="0666")`,
    },
  ];
}

function checkHelper(): CheckResult[] {
  const base = { id: "rootless.helper", title: "rootless: pasta or slirp4netns" };
  const pasta = findProgram("pasta");
  const slirp = findProgram("slirp4netns");
  if (pasta)
    return [
      {
        ...base,
        status: "pass",
        detail: `pasta (${pasta}) carries a rootless lab's NAT and publishes its forwards on your loopback.`,
      },
    ];
  if (slirp)
    return [
      {
        ...base,
        status: "pass",
        detail: `slirp4netns (${slirp}) carries a rootless lab's NAT and forwards (pasta, preferred, is not installed; forwards of \`user\` networks need it).`,
        fix: "apt-get install passt",
      },
    ];
  return [
    {
      ...base,
      status: "warn",
      detail:
        "neither pasta nor slirp4netns is installed: a rootless lab can have private networks only (no NAT, no forwards).",
      fix: "apt-get install --no-install-recommends passt",
    },
  ];
}

async function checkKernel(ctx: DoctorContext): Promise<CheckResult[]> {
  const base = { id: "rootless.kernel", title: "rootless: the built-in guest's kernel" };
  const picked = await pickKernel(ctx.env.bootDir, ctx.env.modulesRoot).catch(() => null);
  if (!picked)
    return [
      {
        ...base,
        status: "skip",
        detail: `no kernel with modules in ${ctx.env.bootDir} (the programs check says what to install).`,
      },
    ];
  const st = await stat(picked.kernel).catch(() => null);
  if (st && (st.mode & 0o004) !== 0)
    return [
      {
        ...base,
        status: "pass",
        detail: `${picked.kernel} is readable by every user: rootless labs can build the built-in guest.`,
      },
    ];
  return [
    {
      ...base,
      status: "fail",
      detail: `${picked.kernel} is ${st ? `mode ${(st.mode & 0o777).toString(8)}` : "unreadable"}: a normal user cannot read it (Ubuntu ships its kernels 0600), so a rootless lab cannot build the built-in guest.`,
      fix: `chmod 0644 ${picked.kernel}  (for future kernels too: echo 'chmod 0644 /boot/vmlinuz-*' > /etc/kernel/postinst.d/zz-qnet-readable && chmod +x /etc/kernel/postinst.d/zz-qnet-readable), or give the VMs a kernel: of your own`,
    },
  ];
}

/** Everything a rootless lab needs of the host. */
export async function checkRootless(ctx: DoctorContext): Promise<CheckResult[]> {
  return [
    ...(await checkUserns(ctx)),
    ...(await checkTun(ctx)),
    ...checkHelper(),
    ...(await checkKernel(ctx)),
  ];
}
