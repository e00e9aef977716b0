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
export const MAX_FILE_BYTES = 2 * 1024 * 1024;

/** Longest path segment shown as is; longer ones (never valid names) are cut so a message stays short. */
const MAX_SEGMENT = 64;

export function formatPath(path: readonly PathSegment[]): string {
  let out = "";
  for (const raw of path) {
    const seg =
      typeof raw === "string" && raw.length > MAX_SEGMENT
        ? `${raw.slice(0, 40)}...(${raw.length} characters)`
        : raw;
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
    // The yaml package's own check compares each key with every other (quadratic: minutes for 100,000
    // VMs); keyProblems below does the same in one pass.
    uniqueKeys: false,
  });
  const located = (offset: number, message: string): Diagnostic => ({
    severity: "error",
    file,
    ...pos(offset),
    path: formatPath(pathAtOffset(doc.contents, offset)),
    message,
  });
  const errors: Diagnostic[] = [
    ...[...doc.errors, ...doc.warnings].map((e) =>
      located(e.pos[0], yamlMessage(e.code, e.message)),
    ),
    ...keyProblems(doc.contents).map((p) => located(p.offset, p.message)),
  ];
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

/** Duplicate keys and keys that are not plain scalars, in one pass over the document (no recursion). */
function keyProblems(root: unknown): { offset: number; message: string }[] {
  const out: { offset: number; message: string }[] = [];
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const node = stack.pop();
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        const key = pair.key as Node | null;
        const offset = key?.range?.[0] ?? (pair.value as Node | null)?.range?.[0] ?? 0;
        if (!isScalar(key) || key.value === null || typeof key.value === "object") {
          out.push({
            offset,
            message: "a key must be a plain name, not a list, a mapping or empty",
          });
        } else {
          const name = String(key.value);
          if (name === "__proto__") {
            // A plain object would take it as its prototype: refused wherever it appears.
            out.push({ offset, message: 'a key may not be named "__proto__"' });
          } else if (seen.has(name)) {
            const shown = name.length > 60 ? `${name.slice(0, 57)}...` : name;
            out.push({
              offset,
              message: `duplicate key ${JSON.stringify(shown)} (a name may appear only once)`,
            });
          }
          seen.add(name);
        }
        stack.push(pair.value);
      }
    } else if (isSeq(node)) {
      for (const item of node.items) stack.push(item);
    }
  }
  return out.sort((a, b) => a.offset - b.offset);
}

/** Deepest path reported for a YAML error; deeper nesting is never a real topology. */
const MAX_PATH_DEPTH = 16;

/** The field path of the node at a text offset (e.g. a duplicate key), as deep as the document allows. */
function pathAtOffset(root: unknown, offset: number): PathSegment[] {
  const path: PathSegment[] = [];
  const contains = (n: unknown) => {
    const r = (n as Node | null)?.range;
    return !!r && offset >= r[0] && offset < r[2];
  };
  let node = root;
  while (node && path.length < MAX_PATH_DEPTH) {
    if (isMap(node)) {
      const pair = node.items.find((p) => contains(p.key) || contains(p.value));
      if (!pair || !isScalar(pair.key)) break;
      path.push(String(pair.key.value));
      if (contains(pair.key)) break;
      node = pair.value;
    } else if (isSeq(node)) {
      const i = node.items.findIndex(contains);
      if (i < 0) break;
      path.push(i);
      node = node.items[i];
    } else break;
  }
  return path;
}

function yamlMessage(code: string, message: string): string {
  const first = message.split("\n")[0] ?? message;
  if (code === "DUPLICATE_KEY") return `${first} (a name may appear only once)`;
  return `malformed YAML: ${first}`;
}
