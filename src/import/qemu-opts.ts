// QEMU's option syntax (QemuOpts), read the way QEMU 7 reads it, and the JSON form of -netdev/-device.
//
// `key=value,key2=value2`: a value runs to the next single comma, and `,,` stands for one comma. The
// first part may omit its key when the option has an implied one (`-netdev user,...` is type=user,
// `-device e1000,...` is driver=e1000, `-m 256` is size=256). Any other part without `=` is a bare
// boolean: `restrict` is restrict=on and `norestrict` restrict=off (deprecated, still accepted).

export interface OptPair {
  key: string;
  value: string;
  /** Offset of the part in the option string (for located errors). */
  at: number;
  /** Offset of the value's first character. */
  valueAt: number;
  /** How the part was written: `key=value`, the implied first key, or a bare boolean. */
  form: "pair" | "implied" | "flag";
}

export type OptsResult =
  | { ok: true; pairs: OptPair[]; json: boolean }
  | { ok: false; at: number; message: string };

/** Keys QEMU accepts are plain names; anything else in a key means the option was misread. */
const KEY_RE = /^[A-Za-z0-9_.-]+$/;

/** Reads one value from `i` to the next single comma; `,,` is a comma. Returns the value and the next index. */
function value(s: string, i: number): { v: string; next: number } {
  let v = "";
  while (i < s.length) {
    if (s[i] === ",") {
      if (s[i + 1] === ",") {
        v += ",";
        i += 2;
        continue;
      }
      break;
    }
    v += s[i];
    i++;
  }
  return { v, next: i };
}

/** Parse `s` as QemuOpts. `implied` names the first part's key when it has no `=`. */
export function parseQemuOpts(s: string, implied?: string): OptsResult {
  const pairs: OptPair[] = [];
  let i = 0;
  let first = true;
  while (i < s.length) {
    const at = i;
    let end = i;
    while (end < s.length && s[end] !== "=" && s[end] !== ",") end++;
    if (s[end] !== "=") {
      if (first && implied) {
        const { v, next } = value(s, i);
        pairs.push({ key: implied, value: v, at, valueAt: at, form: "implied" });
        i = next;
      } else {
        const name = s.slice(i, end);
        if (name === "")
          return { ok: false, at, message: "empty option (two commas where one was meant?)" };
        if (!KEY_RE.test(name))
          return { ok: false, at, message: `"${name}" is not an option name` };
        const off = name.startsWith("no") && name.length > 2;
        pairs.push({
          key: off ? name.slice(2) : name,
          value: off ? "off" : "on",
          at,
          valueAt: at,
          form: "flag",
        });
        i = end;
      }
    } else {
      const key = s.slice(i, end);
      if (key === "") return { ok: false, at, message: "option with no name before `=`" };
      if (!KEY_RE.test(key)) return { ok: false, at, message: `"${key}" is not an option name` };
      const { v, next } = value(s, end + 1);
      pairs.push({ key, value: v, at, valueAt: end + 1, form: "pair" });
      i = next;
    }
    first = false;
    if (i < s.length) i++; // the comma
  }
  if (pairs.length === 0 && implied) return { ok: false, at: 0, message: "empty option" };
  return { ok: true, pairs, json: false };
}

/**
 * Parse the JSON form (`-netdev '{"type":"user","id":"n0"}'`) into the same pairs. Booleans become
 * on/off and numbers strings; a list (hostfwd) becomes one pair per element; QAPI's `{"str": ...}`
 * wrapper is unwrapped. Nested objects are refused: qnet reads flat options only.
 */
export function parseJsonOpts(s: string): OptsResult {
  let obj: unknown;
  try {
    obj = JSON.parse(s);
  } catch (e) {
    const m = /position (\d+)/.exec((e as Error).message);
    return {
      ok: false,
      at: m ? Number(m[1]) : 0,
      message: `invalid JSON: ${(e as Error).message}`,
    };
  }
  if (obj === null || typeof obj !== "object" || Array.isArray(obj))
    return { ok: false, at: 0, message: "the JSON form of an option must be an object" };
  const pairs: OptPair[] = [];
  const scalar = (key: string, v: unknown): string | null => {
    if (typeof v === "string") return v;
    if (typeof v === "boolean") return v ? "on" : "off";
    if (typeof v === "number" && Number.isFinite(v)) return String(v);
    if (v && typeof v === "object" && !Array.isArray(v)) {
      const keys = Object.keys(v);
      if (keys.length === 1 && keys[0] === "str") return scalar(key, (v as { str: unknown }).str);
    }
    return null;
  };
  for (const [key, v] of Object.entries(obj)) {
    const at = Math.max(0, s.indexOf(JSON.stringify(key)));
    if (!KEY_RE.test(key)) return { ok: false, at, message: `"${key}" is not an option name` };
    const items = Array.isArray(v) ? v : [v];
    for (const item of items) {
      const sv = scalar(key, item);
      if (sv === null)
        return {
          ok: false,
          at,
          message: `"${key}": qnet reads strings, numbers and booleans only`,
        };
      pairs.push({ key, value: sv, at, valueAt: at, form: "pair" });
    }
  }
  return { ok: true, pairs, json: true };
}

/** An option argument in either form: JSON when it starts with `{`, QemuOpts otherwise. */
export function parseOptionArg(s: string, implied?: string): OptsResult {
  return s.trimStart().startsWith("{") ? parseJsonOpts(s) : parseQemuOpts(s, implied);
}

/** The pairs as a multimap helper: first value of a key, all values, and what was not read. */
export class Opts {
  private readonly used = new Set<number>();
  constructor(readonly pairs: OptPair[]) {}

  get(key: string): string | undefined {
    const i = this.pairs.findIndex((p) => p.key === key);
    if (i < 0) return undefined;
    this.used.add(i);
    // QEMU keeps the last of repeated scalar keys.
    let last = i;
    this.pairs.forEach((p, j) => {
      if (p.key === key) {
        this.used.add(j);
        last = j;
      }
    });
    return this.pairs[last]!.value;
  }

  pair(key: string): OptPair | undefined {
    const v = this.get(key);
    return v === undefined ? undefined : this.pairs.filter((p) => p.key === key).at(-1);
  }

  all(key: string): OptPair[] {
    const out: OptPair[] = [];
    this.pairs.forEach((p, j) => {
      if (p.key === key) {
        this.used.add(j);
        out.push(p);
      }
    });
    return out;
  }

  /** The pairs no `get`/`all` asked for, in order. */
  rest(): OptPair[] {
    return this.pairs.filter((_, j) => !this.used.has(j));
  }
}
