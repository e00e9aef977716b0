// How each host change is taken back: the journal's undo records. One closed union; src/engine/undo.ts
// holds one handler per kind (a static, exhaustive table), and every handler is idempotent.
import type { NmProfileRef, UplinkSnapshot } from "../facts/types.js";

export type Undo =
  /** Delete a link qnet created (bridge, tap, macvtap), only if it still carries qnet's mark. */
  | { kind: "link"; name: string; alias: string }
  /** Delete a network namespace qnet created (or hand it to another lab still using it). */
  | { kind: "netns"; name: string }
  /** Stop a process qnet started, found by its pidfile and checked by its command line. */
  | { kind: "process"; pidfile: string; match: string; qmp?: string }
  /** Delete an nftables table qnet owns. */
  | { kind: "nft-table"; family: string; table: string }
  /** Put a sysctl back to the value it had. `key` is a /proc/sys path or a dotted name. */
  | { kind: "sysctl"; key: string; value: string }
  /** Remove a file or directory qnet created. */
  | { kind: "path"; path: string }
  /** Delete an accept rule qnet inserted into an iptables chain (by its exact match). */
  | { kind: "iptables-rule"; bin: string; chain: string; spec: string[] }
  /** Delete the rules of a foreign nft chain that carry exactly qnet's comment. */
  | { kind: "nft-rule"; family: string; table: string; chain: string; comment: string }
  /** Take the lab's block out of a hosts file (delete the file if qnet made it and it is empty of labs). */
  | { kind: "hosts-block"; path: string; lab: string; created: boolean }
  /** Put a LAN uplink back as it was, from the exact inverse computed before the move. */
  | ({ kind: "uplink-move" } & UplinkMoveRecord)
  /**
   * Put a NetworkManager uplink back: its original profile active again, qnet's profiles (checked by both
   * marks, name prefix and derived UUID) deleted, the uplink's addresses back as in the snapshot.
   */
  | ({ kind: "uplink-nm" } & UplinkNmRecord)
  /** Take qnet's file out of NetworkManager's /run/NetworkManager/conf.d (if it still carries the lab's mark). */
  | { kind: "nm-conf"; lab: string; file: string }
  /** Delete a VXLAN device's all-zero FDB entry to `dst`, only if the device still carries `alias`. */
  | { kind: "fdb"; device: string; dst: string; alias: string }
  /** Delete qnet's root qdisc (handle 5154:) or ingress redirect (filter 5154) of a device, if still there. */
  | { kind: "qdisc"; dev: string; parent: "root" | "ingress" }
  /**
   * Stop a rootless lab's host-side process (its namespace holder, its pasta or slirp4netns), found by
   * pidfile and command line like `process`, but always from the host: the lab's own qnet, inside the
   * namespaces, never takes these back.
   */
  | {
      kind: "rootless-process";
      role: "holder" | "pasta" | "slirp4netns";
      pidfile: string;
      match: string;
    };

export interface UplinkNmRecord {
  lab: string;
  uplink: string;
  bridge: string;
  /** The uplink's active profile before the move (null: it had none). */
  original: NmProfileRef | null;
  /** qnet's profiles, in the order they are deleted (the port, then the bridge). */
  profiles: NmProfileRef[];
  /** The uplink as it was before the move. */
  snapshot: UplinkSnapshot;
}

export interface UplinkMoveRecord {
  uplink: string;
  bridge: string;
  alias: string;
  /** The `ip -batch` lines that put everything back, computed before the move. */
  inverse: string[];
  /** The uplink as it was before the move. */
  snapshot: UplinkSnapshot;
}

export interface JournalEntry {
  seq: number;
  /** What was about to be done, for people. */
  what: string;
  undo: Undo;
}
