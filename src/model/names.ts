// Naming rules, each defined once: the validator, every renderer and every adapter use these.
//
// Names from a topology file reach command lines (argv), file names, DNS labels, dnsmasq and nftables
// configuration and QEMU options. They are restricted to plain identifiers, so none of them ever needs
// quoting anywhere, and the renderers check them again as a last guard.

/** Lab, network and VM names: file names, DNS labels, nft table names, parts of derived interface names. */
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
export const NAME_RULE =
  "1-63 characters of [A-Za-z0-9_-], starting with a letter or digit (it becomes a file name, a DNS label and part of interface names)";

/** Interface names: at most 15 bytes (IFNAMSIZ), nothing that needs quoting in argv or config files. */
export const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
export const IFNAME_RULE =
  "interface names must be 1-15 bytes of [A-Za-z0-9_.-] (IFNAMSIZ; they reach command lines and config files unquoted)";

/** Network namespace names: paths under /run/netns and `ip -n` arguments. */
export const NETNS_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const NETNS_RULE =
  "a namespace name is 1-64 characters of [A-Za-z0-9_.-], starting with a letter or digit";

/** Local user names (owners of taps): the portable POSIX subset. */
export const USER_RE = /^[a-z_][a-z0-9_-]*$/;

export const MAC_RE = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;

export const isName = (s: unknown): s is string => typeof s === "string" && NAME_RE.test(s);
export const isIfname = (s: unknown): s is string => typeof s === "string" && IFNAME_RE.test(s);
export const isNetnsName = (s: unknown): s is string => typeof s === "string" && NETNS_RE.test(s);

/**
 * The state directory: its paths reach dnsmasq's configuration (one value per line, `#` comments) and
 * QEMU's options, so it is a plain absolute path: no white space, quote, comma, `#` or control character.
 */
export const PLAIN_PATH_RE = /^\/[A-Za-z0-9_./+@:%=~-]*$/;
export const PLAIN_PATH_RULE =
  "an absolute path of [A-Za-z0-9_./+@:%=~-] (it reaches dnsmasq's configuration and QEMU's options)";
export const isPlainPath = (s: unknown): s is string =>
  typeof s === "string" && PLAIN_PATH_RE.test(s) && !s.split("/").includes("..");

/** A name used by a renderer: throws (an internal error: the validator lets no such name through). */
export function checkedName(value: string, what: string): string {
  if (!isName(value))
    throw new Error(`internal: ${what} is not a valid name: ${JSON.stringify(value)}`);
  return value;
}

export function checkedIfname(value: string, what: string): string {
  if (!isIfname(value))
    throw new Error(`internal: ${what} is not an interface name: ${JSON.stringify(value)}`);
  return value;
}

/**
 * The lab's nftables table: `qnet-<lab>` in family ip. nft accepts names of up to 255 characters; any
 * valid lab name gives at most 68, starting with a letter.
 */
export function nftTableOf(lab: string): { family: "ip"; table: string } {
  return { family: "ip", table: `qnet-${checkedName(lab, "lab name")}` };
}

/** qnet's mark on what it creates for a lab: interface alias, firewall rule comment. */
export function ownerMark(lab: string): string {
  return `qnet:${lab}`;
}
