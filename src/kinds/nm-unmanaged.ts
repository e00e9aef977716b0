// NetworkManager keeps its hands off the lab's own interfaces: one conf.d file per lab (written before the
// links exist, so new taps are never managed) and `managed no` for those it already manages.
import { nmHolds } from "../plan/uplink-nm.js";
import { nmConfFile, renderNmUnmanagedConf } from "../render/nm-conf.js";
import { macvtapKind } from "./macvtap.js";
import { tapsOf } from "./tap.js";
import { ABSENT, type Action, type Kind, verdict } from "./types.js";

export interface WantNmUnmanaged {
  file: string;
  /** Links qnet makes with iproute2 in every case: taps, macvtaps, private bridges. */
  links: string[];
  /** Bridges of `bridged` networks: qnet's own unless NetworkManager moves the uplink (then they are its). */
  bridged: { bridge: string; uplink: string }[];
}

export type NmUnmanagedPayload =
  | { op: "write"; file: string; content: string; devices: string[] }
  | { op: "unmanage"; device: string };

export const nmUnmanagedKind: Kind<WantNmUnmanaged> = {
  name: "nm-unmanaged",
  desired(env) {
    const lab = env.lab;
    const links = [
      ...tapsOf(lab).map((t) => t.name),
      ...macvtapKind.desired(env).map((m) => m.name),
      ...lab.networks.flatMap((n) => (n.type === "bridge" ? [n.bridge] : [])),
    ];
    const bridged = lab.networks.flatMap((n) =>
      n.type === "bridged" && n.mode === "bridge" ? [{ bridge: n.bridge, uplink: n.uplink }] : [],
    );
    return links.length + bridged.length ? [{ file: nmConfFile(lab.name), links, bridged }] : [];
  },
  observe: (want) => (want.length ? { networkManager: true } : {}),
  diff(want, obs, env) {
    const nm = obs.nm;
    // Without a NetworkManager in the namespace there is nothing to keep away.
    if (!nm) return { verdicts: [] };
    return {
      verdicts: want.map((w) => {
        const devices = [
          ...w.links,
          ...w.bridged.flatMap((b) => {
            const m = obs.uplinks.get(b.uplink)?.manager;
            return m?.kind === "nmcli" && nmHolds(m) ? [] : [b.bridge];
          }),
        ].sort();
        const content = renderNmUnmanagedConf(env.lab.name, devices);
        const have = nm.qnetConf.get(w.file);
        const actions: Action[] = [];
        if (have !== content) {
          actions.push({
            kind: "nm-unmanaged",
            what: `write /run/NetworkManager/conf.d/${w.file} (NetworkManager leaves ${devices.length} interface(s) of the lab alone) and reload NetworkManager's configuration`,
            reason: have === undefined ? ABSENT : "it lists other interfaces",
            undo: { kind: "nm-conf", lab: env.lab.name, file: w.file },
            payload: { op: "write", file: w.file, content, devices } satisfies NmUnmanagedPayload,
          });
        }
        const wanted = new Set(devices);
        for (const d of nm.devices) {
          if (!wanted.has(d.device) || d.state === "unmanaged") continue;
          actions.push({
            kind: "nm-unmanaged",
            what: `nmcli device set ${d.device} managed no`,
            reason: `NetworkManager manages ${d.device} (${d.state})`,
            undo: null,
            payload: { op: "unmanage", device: d.device } satisfies NmUnmanagedPayload,
          });
        }
        return verdict(
          "nm-unmanaged",
          w.file,
          `NetworkManager (pid ${nm.pid}) leaves ${devices.length} interface(s) of the lab alone`,
          actions,
          have === undefined ? "missing" : "drifted",
        );
      }),
    };
  },
};
