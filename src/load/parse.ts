// Parse a topology file (YAML or JSON) into plain data plus a locator from field paths to line:column.
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import type { Diagnostic } from "../errors.js";

export type PathSegment = string | number;

export interface Parsed {
  file: string;
  data: unknown;
  /** Line and column (1-based) of the value at `path`, or of its nearest existing parent. */
  locate(path: readonly PathSegment[], which?: "value" | "key"): { line: number; column: number };
  /** Diagnostics from the YAML parser itself. */
  errors: Diagnostic[];
}

/** Largest topology file accepted, in bytes: far beyond any real lab, small enough to parse quickly. */
export const MAX_FILE_BYTES = 8 * 1024 * 1024;

export function formatPath(path: readonly PathSegment[]): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (/^[A-Za-z0-9_$-]+$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

export function parseTopologyText(text: string, file: string): Parsed {
  const lineCounter = new LineCounter();
  const pos = (offset: number) => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, column: p.col };
  };
  if (Buffer.byteLength(text, "utf8") > MAX_FILE_BYTES) {
    return {
      file,
      data: undefined,
      locate: () => ({ line: 1, column: 1 }),
      errors: [
        {
          severity: "error",
          file,
          line: 1,
          column: 1,
          path: "",
          message: `the file is larger than ${MAX_FILE_BYTES / 1024 / 1024} MiB; a topology file this size is not accepted`,
        },
      ],
    };
  }
  const doc = parseDocument(text, {
    lineCounter,
    prettyErrors: false,
    uniqueKeys: true,
  });
  const errors: Diagnostic[] = [...doc.errors, ...doc.warnings].map((e) => ({
    severity: "error" as const,
    file,
    ...pos(e.pos[0]),
    path: "",
    message: yamlMessage(e.code, e.message),
  }));
  let data: unknown;
  if (errors.length === 0) {
    try {
      data = doc.toJS({ maxAliasCount: 100 });
    } catch (e) {
      errors.push({
        severity: "error",
        file,
        line: 1,
        column: 1,
        path: "",
        message: `the file cannot be read as data: ${(e as Error).message}`,
      });
    }
  }

  const locate = (path: readonly PathSegment[], which: "value" | "key" = "value") => {
    let node: unknown = doc.contents;
    let best: Node | null = (doc.contents as Node | null) ?? null;
    let keyNode: Node | null = null;
    for (const seg of path) {
      keyNode = null;
      if (isMap(node)) {
        const pair = node.items.find(
          (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg),
        );
        if (!pair) break;
        keyNode = pair.key as Node;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === "number") {
        node = node.items[seg];
      } else break;
      if (node && typeof node === "object" && "range" in node) best = node as Node;
      else if (keyNode) best = keyNode;
    }
    const target = which === "key" && keyNode ? keyNode : best;
    return target?.range ? pos(target.range[0]) : { line: 1, column: 1 };
  };
  return { file, data, locate, errors };
}

function yamlMessage(code: string, message: string): string {
  const first = message.split("\n")[0] ?? message;
  if (code === "DUPLICATE_KEY") return `${first} (a name may appear only once)`;
  return `malformed YAML: ${first}`;
}
