// Read a QEMU option string back the way QEMU does: split on single commas, `,,` is a literal comma.

export interface ParsedOpts {
  head: string;
  pairs: [string, string][];
}

/** Split `head,k=v,k2=v2` into its head and pairs; throws on a part with no `=` after the head. */
export function parseQemuOpts(s: string): ParsedOpts {
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < s.length; i++) {
    if (s[i] === ",") {
      if (s[i + 1] === ",") {
        cur += ",";
        i++;
      } else {
        parts.push(cur);
        cur = "";
      }
    } else cur += s[i];
  }
  parts.push(cur);
  const [head, ...rest] = parts;
  const pairs = rest.map((p): [string, string] => {
    const eq = p.indexOf("=");
    if (eq < 0)
      throw new Error(`option part without "=": ${JSON.stringify(p)} in ${JSON.stringify(s)}`);
    return [p.slice(0, eq), p.slice(eq + 1)];
  });
  return { head: head!, pairs };
}
