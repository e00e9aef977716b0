// Reads a shell script (or pasted lines) into simple commands of located words, with tree-sitter-bash.
import { createRequire } from "node:module";
import { Language, type Node, Parser } from "web-tree-sitter";
import { type Loc, locator } from "./located.js";

/** One word after quote removal, with the source location of each of its characters. */
export interface ShellWord {
  /** The word as the shell would pass it (quotes removed, escapes and known variables resolved). */
  text: string;
  /** The word as written in the script. */
  raw: string;
  loc: Loc;
  /** Location of character `i` of `text` in the script (for errors inside QEMU options). */
  at(i: number): Loc;
  /** False when the word holds something only the shell can know at run time: `$(whoami)`, `$UNSET`. */
  literal: boolean;
  /** The variables the word expands that the script does not set (e.g. QNET_GUEST_KERNEL). */
  unknownVars: string[];
}

/** A simple command: `sudo`, `ip netns exec NS` and `env` prefixes already taken off. */
export interface ShellCommand {
  words: ShellWord[];
  loc: Loc;
  /** The text of the whole command as written (for notes). */
  source: string;
  /** The contiguous comment lines right above the command, without `#`. */
  comments: string[];
  /** Standard input from a here-document (`<<'EOF'`), if any. */
  stdin: string | null;
  /** `> FILE` or `>> FILE` redirection of standard output, if any. */
  stdout: { path: string; append: boolean } | null;
  /** `ip netns exec NS` prefix. */
  netns: string | null;
}

/** Something in the script that is not a simple command, or could not be read. */
export interface ShellIssue {
  severity: "error" | "note";
  loc: Loc;
  message: string;
}

export interface ShellScript {
  commands: ShellCommand[];
  issues: ShellIssue[];
  /** Every comment of the script, with its location (for hints such as `# network lan: ...`). */
  comments: { text: string; loc: Loc }[];
}

let parser: Promise<Parser> | null = null;

/** tree-sitter's bash grammar, compiled to WebAssembly: no native build, the same on every host. */
function bashParser(): Promise<Parser> {
  parser ??= (async () => {
    const require = createRequire(import.meta.url);
    await Parser.init();
    const bash = await Language.load(require.resolve("tree-sitter-bash/tree-sitter-bash.wasm"));
    const p = new Parser();
    p.setLanguage(bash);
    return p;
  })();
  return parser;
}

/** Characters a backslash escapes inside double quotes (anywhere else it escapes any character). */
const DQ_ESCAPES = new Set(["$", "`", '"', "\\", "\n"]);

interface Piece {
  text: string;
  /** Source index of each character of `text`. */
  idx: number[];
  literal: boolean;
  unknownVars: string[];
}

const empty = (): Piece => ({ text: "", idx: [], literal: true, unknownVars: [] });

function append(a: Piece, b: Piece): void {
  a.text += b.text;
  a.idx.push(...b.idx);
  a.literal &&= b.literal;
  a.unknownVars.push(...b.unknownVars);
}

/** Unescape backslashes in a plain word (or in double quotes, where only some characters escape). */
function unbackslash(raw: string, start: number, dq: boolean): Piece {
  const p = empty();
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]!;
    if (c === "\\" && i + 1 < raw.length && (!dq || DQ_ESCAPES.has(raw[i + 1]!))) {
      i++;
      if (raw[i] === "\n") continue; // a line continuation
      p.text += raw[i];
      p.idx.push(start + i);
      continue;
    }
    p.text += c;
    p.idx.push(start + i);
  }
  return p;
}

/** $'…' (ANSI-C quoting): the common escapes. */
function ansiC(raw: string, start: number): Piece {
  const p = empty();
  const map: Record<string, string> = { n: "\n", t: "\t", r: "\r", "\\": "\\", "'": "'", '"': '"' };
  const body = raw.slice(2, -1);
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === "\\" && i + 1 < body.length && map[body[i + 1]!] !== undefined) {
      p.text += map[body[i + 1]!];
      p.idx.push(start + 2 + i);
      i++;
      continue;
    }
    p.text += c;
    p.idx.push(start + 2 + i);
  }
  return p;
}

/** Reads a whole script. Never throws on bad input: syntax errors become located issues. */
export async function readShellScript(text: string): Promise<ShellScript> {
  const tree = (await bashParser()).parse(text);
  if (!tree) throw new Error("internal: tree-sitter returned no tree");
  const locOf = locator(text);
  const vars = new Map<string, string>();
  const out: ShellScript = { commands: [], issues: [], comments: [] };
  let pendingComments: { text: string; line: number }[] = [];

  const issue = (severity: ShellIssue["severity"], node: Node, message: string) =>
    out.issues.push({ severity, loc: locOf(node.startIndex), message });

  const piece = (node: Node): Piece => {
    const start = node.startIndex;
    switch (node.type) {
      case "word":
      case "number":
      case "special_variable_name":
        return unbackslash(node.text, start, false);
      case "raw_string": {
        const p = empty();
        p.text = node.text.slice(1, -1);
        p.idx = Array.from({ length: p.text.length }, (_, i) => start + 1 + i);
        return p;
      }
      case "ansi_c_string":
        return ansiC(node.text, start);
      case "string": {
        const p = empty();
        // Children are the quotes, string_content and expansions; text between them is literal.
        let pos = start + 1;
        const end = node.endIndex - 1;
        for (const c of node.children) {
          if (c.type === '"') continue;
          if (c.startIndex > pos) append(p, unbackslash(text.slice(pos, c.startIndex), pos, true));
          if (c.type === "string_content") append(p, unbackslash(c.text, c.startIndex, true));
          else append(p, piece(c));
          pos = c.endIndex;
        }
        if (end > pos) append(p, unbackslash(text.slice(pos, end), pos, true));
        return p;
      }
      case "concatenation": {
        const p = empty();
        let pos = start;
        for (const c of node.children) {
          if (c.startIndex > pos) append(p, unbackslash(text.slice(pos, c.startIndex), pos, false));
          append(p, piece(c));
          pos = c.endIndex;
        }
        return p;
      }
      case "simple_expansion":
      case "expansion": {
        const name = node.children.find((c) => c.type === "variable_name")?.text;
        const simple =
          node.type === "simple_expansion" ||
          (node.childCount === 3 && node.children[1]?.type === "variable_name");
        if (name && simple && vars.has(name)) {
          const v = vars.get(name)!;
          return { text: v, idx: Array(v.length).fill(start), literal: true, unknownVars: [] };
        }
        return {
          text: node.text,
          idx: Array.from({ length: node.text.length }, (_, i) => start + i),
          literal: false,
          unknownVars: name && simple ? [name] : [],
        };
      }
      default:
        // $(…), `…`, arithmetic, globs with brace expansion...: only the shell knows the value.
        return {
          text: node.text,
          idx: Array.from({ length: node.text.length }, (_, i) => start + i),
          literal: false,
          unknownVars: [],
        };
    }
  };

  const word = (node: Node): ShellWord => {
    const p = piece(node);
    const base = locOf(node.startIndex);
    return {
      text: p.text,
      raw: node.text,
      loc: base,
      at: (i) =>
        p.idx.length === 0 ? base : locOf(p.idx[Math.min(Math.max(i, 0), p.idx.length - 1)]!),
      literal: p.literal,
      unknownVars: p.unknownVars,
    };
  };

  const takeComments = (node: Node): string[] => {
    // Only the comment lines directly above (no blank line between) describe the command.
    const line = node.startPosition.row;
    const lines: string[] = [];
    let expect = line - 1;
    for (let i = pendingComments.length - 1; i >= 0; i--) {
      const c = pendingComments[i]!;
      if (c.line !== expect) break;
      lines.unshift(c.text);
      expect--;
    }
    pendingComments = [];
    return lines;
  };

  const simple = (
    node: Node,
    redirect: { stdin: string | null; stdout: ShellCommand["stdout"] },
    comments: string[],
  ) => {
    const words: ShellWord[] = [];
    for (const c of node.children) {
      if (c.type === "command_name") words.push(word(c.firstChild ?? c));
      else if (c.type === "variable_assignment") {
        issue("note", c, `environment assignment ${c.text} before a command: not imported`);
      } else if (c.type === "comment") continue;
      else if (c.type.endsWith("redirect")) {
        issue("note", c, `redirection ${c.text}: not imported`);
      } else words.push(word(c));
    }
    // Prefixes that do not change what the command means here.
    let netns: string | null = null;
    for (;;) {
      const w0 = words[0]?.text;
      if (w0 === "sudo" || w0 === "doas" || w0 === "command" || w0 === "exec") {
        words.shift();
        while (words[0]?.text.startsWith("-") && words[0].text !== "--") words.shift();
        if (words[0]?.text === "--") words.shift();
      } else if (w0 === "env") {
        words.shift();
        while (words[0] && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0].text)) words.shift();
      } else if (
        w0 === "ip" &&
        words[1]?.text === "netns" &&
        words[2]?.text === "exec" &&
        words[3]
      ) {
        netns = words[3].text;
        words.splice(0, 4);
      } else break;
    }
    if (words.length === 0) return;
    out.commands.push({
      words,
      loc: locOf(node.startIndex),
      source: node.text,
      comments,
      stdin: redirect.stdin,
      stdout: redirect.stdout,
      netns,
    });
  };

  const statement = (node: Node, comments: string[]): void => {
    switch (node.type) {
      case "comment": {
        const t = node.text.replace(/^#/, "");
        out.comments.push({ text: t, loc: locOf(node.startIndex) });
        pendingComments.push({ text: t.trim(), line: node.startPosition.row });
        return;
      }
      case "command":
        simple(node, { stdin: null, stdout: null }, comments);
        return;
      case "variable_assignment": {
        const name = node.childForFieldName("name")?.text ?? node.firstChild?.text;
        const value = node.childForFieldName("value");
        const v = value ? piece(value) : empty();
        if (name && v.literal) vars.set(name, v.text);
        else if (name) vars.delete(name);
        return;
      }
      case "variable_assignments":
        for (const c of node.namedChildren) if (c) statement(c, comments);
        return;
      case "redirected_statement": {
        const body = node.childForFieldName("body") ?? node.firstNamedChild;
        let stdin: string | null = null;
        let stdout: ShellCommand["stdout"] = null;
        for (const r of node.namedChildren) {
          if (!r || r === body) continue;
          if (r.type === "heredoc_redirect") {
            const b = r.namedChildren.find((c) => c?.type === "heredoc_body");
            stdin = b ? b.text : "";
            // The body as tree-sitter gives it keeps its final newline before the delimiter.
          } else if (r.type === "file_redirect") {
            const op = r.children.find((c) => c && /^(>|>>|>\||&>)$/.test(c.type))?.type;
            const dest = r.childForFieldName("destination") ?? r.lastNamedChild;
            if (op && dest && !r.children.some((c) => c?.type === "file_descriptor")) {
              stdout = { path: piece(dest).text, append: op === ">>" };
            } else issue("note", r, `redirection ${r.text}: not imported`);
          } else issue("note", r, `redirection ${r.text}: not imported`);
        }
        if (body?.type === "command") simple(body, { stdin, stdout }, comments);
        else if (body) statement(body, comments);
        return;
      }
      case "list":
        // `a && b`, `a || b`: both are commands of the script.
        for (const c of node.namedChildren) if (c) statement(c, comments);
        return;
      case "pipeline":
        issue("note", node, `pipeline not imported: ${oneLine(node.text)}`);
        return;
      case "ERROR":
        issue("error", node, `shell syntax error: ${describeError(node)}`);
        return;
      default:
        issue(
          "note",
          node,
          `${node.type.replaceAll("_", " ")} not imported (qnet reads plain commands; write loops and functions out): ${oneLine(node.text)}`,
        );
    }
  };

  for (const node of tree.rootNode.children) {
    if (!node) continue;
    const comments = node.type === "comment" ? [] : takeComments(node);
    statement(node, comments);
  }
  // Errors nested inside commands (an unterminated quote, a missing `)`).
  const walk = (n: Node) => {
    // `N<>FILE` (open read-write) is POSIX, but tree-sitter-bash reads its `>` as an error.
    const readWrite =
      n.type === "ERROR" &&
      n.parent?.type === "file_redirect" &&
      n.text === ">" &&
      text[n.startIndex - 1] === "<";
    if (readWrite) return;
    if (n.type === "ERROR" && n.parent?.type !== "program")
      issue("error", n, `shell syntax error: ${describeError(n)}`);
    else if (n.isMissing) issue("error", n, `shell syntax error: missing ${n.type}`);
    for (const c of n.children) if (c?.hasError) walk(c);
    for (const c of n.children) if (c?.isMissing) walk(c);
  };
  if (tree.rootNode.hasError) for (const c of tree.rootNode.children) if (c?.hasError) walk(c);
  tree.delete();
  out.issues.sort((a, b) => a.loc.line - b.loc.line || a.loc.column - b.loc.column);
  return out;
}

function oneLine(s: string): string {
  const l = s.replace(/\s+/g, " ").trim();
  return l.length > 80 ? `${l.slice(0, 77)}...` : l;
}

function describeError(n: Node): string {
  const t = n.text;
  if (/^['"]/.test(t.trimStart())) return "unterminated quote";
  return `cannot read ${JSON.stringify(oneLine(t).slice(0, 40))}`;
}
