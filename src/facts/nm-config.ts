// NetworkManager's configuration as `NetworkManager --print-config` shows it (pure): its sections, and which of
// them would leave a device unmanaged (`[keyfile] unmanaged-devices`, `[device*]` sections with managed=0).

export interface NmConfigSection {
  name: string;
  values: Map<string, string>;
}

/** The merged configuration, section by section (comments and blank lines dropped). */
export function parseNmConfig(text: string): NmConfigSection[] {
  const out: NmConfigSection[] = [];
  let cur: NmConfigSection | null = null;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#") || line.startsWith(";")) continue;
    const sec = /^\[(.+)\]$/.exec(line);
    if (sec) {
      cur = { name: sec[1]!, values: new Map() };
      out.push(cur);
      continue;
    }
    const eq = line.indexOf("=");
    if (cur && eq > 0) cur.values.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return out;
}

/** A device spec list split at unescaped `,` and `;`, each item trimmed. */
export function splitSpecs(list: string): string[] {
  const out: string[] = [];
  let cur = "";
  for (let i = 0; i < list.length; i++) {
    const c = list[i]!;
    if (c === "\\" && i + 1 < list.length) cur += list[++i];
    else if (c === "," || c === ";") {
      out.push(cur.trim());
      cur = "";
    } else cur += c;
  }
  out.push(cur.trim());
  return out.filter(Boolean);
}

/** NetworkManager's simple globbing: `*` and `?`. */
function glob(pattern: string, name: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${re}$`).test(name);
}

const MAC = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;

/** Whether one positive spec matches a device known by name and type (specs on other facts never match). */
function matchOne(spec: string, dev: { name: string; type: string }): boolean {
  if (spec === "*") return true;
  if (spec.startsWith("interface-name:=")) return spec.slice(16) === dev.name;
  if (spec.startsWith("interface-name:~")) return glob(spec.slice(16), dev.name);
  if (spec.startsWith("interface-name:")) return glob(spec.slice(15), dev.name);
  if (spec.startsWith("type:")) return spec.slice(5) === dev.type;
  if (/^[a-z0-9-]+:/.test(spec) || MAC.test(spec)) return false;
  // A bare word is an interface name, taken literally.
  return spec === dev.name;
}

/** Whether a device spec list matches the device: a negative (`except:`) match wins over positive ones. */
export function specMatches(list: string, dev: { name: string; type: string }): boolean {
  const specs = splitSpecs(list);
  const negative = specs.filter((s) => s.startsWith("except:")).map((s) => s.slice(7));
  const positive = specs.filter((s) => !s.startsWith("except:"));
  if (negative.some((s) => matchOne(s, dev))) return false;
  // Only negative specs: as if `*` were there too.
  if (positive.length === 0) return negative.length > 0;
  return positive.some((s) => matchOne(s, dev));
}

const FALSE = new Set(["0", "false", "no", "off"]);

/** The configuration that leaves the device unmanaged, in words (empty: none does). `skip`: sections to ignore. */
export function unmanagedBy(
  sections: NmConfigSection[],
  dev: { name: string; type: string },
  skip: (section: string) => boolean = () => false,
): string[] {
  const out: string[] = [];
  for (const s of sections) {
    if (skip(s.name)) continue;
    const list = s.values.get("unmanaged-devices");
    if (s.name === "keyfile" && list && specMatches(list, dev))
      out.push(`[keyfile] unmanaged-devices=${list}`);
    const managed = s.values.get("managed");
    if (s.name.startsWith("device") && managed !== undefined && FALSE.has(managed.toLowerCase())) {
      const match = s.values.get("match-device");
      if (match === undefined || specMatches(match, dev))
        out.push(
          `[${s.name}]${match === undefined ? "" : ` match-device=${match}`} managed=${managed}`,
        );
    }
  }
  return out;
}
