// A small XML writer for libvirt's documents: escaped text and attributes, safe comments, two-space indent.
//
// xmlbuilder2 was tried first: it writes a newline inside an attribute raw (XML parsers read it back as
// a space) and `--` inside a comment raw (the document is then not well-formed), and both reach libvirt
// from topology files (qemu.args, paths). This writer escapes both.

export type XmlNode =
  | {
      el: string;
      attrs?: Record<string, string | number | undefined>;
      children?: XmlNode[];
      text?: string;
    }
  | { comment: string };

/** Characters XML 1.0 cannot carry at all: C0 controls other than tab, newline and carriage return. */
function forbidden(s: string): boolean {
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if ((c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) || c === 0xfffe || c === 0xffff)
      return true;
  }
  return false;
}

function check(s: string, what: string): string {
  if (forbidden(s))
    throw new Error(`${what} holds a control character XML cannot carry: ${JSON.stringify(s)}`);
  return s;
}

export function escapeText(s: string): string {
  // A raw carriage return would reach the reader as a newline.
  return check(s, "text")
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll("\r", "&#13;");
}

export function escapeAttr(s: string): string {
  return check(s, "attribute")
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll("'", "&apos;")
    .replaceAll('"', "&quot;")
    .replaceAll("\t", "&#9;")
    .replaceAll("\n", "&#10;")
    .replaceAll("\r", "&#13;");
}

/** A comment cannot hold `--` or end with `-`. */
export function safeComment(s: string): string {
  return check(s, "comment").replaceAll("--", "- -").replace(/-$/, "- ");
}

export const el = (
  name: string,
  attrs: Record<string, string | number | undefined> = {},
  ...children: (XmlNode | string | null | false | undefined)[]
): XmlNode => {
  const kids = children.filter((c): c is XmlNode | string => !!c || c === "");
  if (kids.length === 1 && typeof kids[0] === "string") return { el: name, attrs, text: kids[0] };
  return {
    el: name,
    attrs,
    children: kids.map((k) => (typeof k === "string" ? { el: "", text: k } : k)),
  };
};

export const comment = (text: string): XmlNode => ({ comment: text });

export function renderXml(node: XmlNode, indent = ""): string {
  if ("comment" in node) {
    const lines = node.comment.split("\n").map(safeComment);
    if (lines.length === 1) return `${indent}<!-- ${lines[0]} -->`;
    return [`${indent}<!--`, ...lines.map((l) => `${indent}  ${l}`), `${indent}-->`].join("\n");
  }
  const attrs = Object.entries(node.attrs ?? {})
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}='${escapeAttr(String(v))}'`)
    .join("");
  if (node.text !== undefined)
    return `${indent}<${node.el}${attrs}>${escapeText(node.text)}</${node.el}>`;
  const kids = node.children ?? [];
  if (kids.length === 0) return `${indent}<${node.el}${attrs}/>`;
  return [
    `${indent}<${node.el}${attrs}>`,
    ...kids.map((k) => renderXml(k, `${indent}  `)),
    `${indent}</${node.el}>`,
  ].join("\n");
}
