// Writes an imported topology as a commented YAML file: where each part came from, what was kept as written.
import { Document, isMap, isScalar, isSeq, type Node, type Pair, Scalar, YAMLMap } from "yaml";
import type { TopologyFile } from "../model/schema.js";
import type { Inferred } from "./infer.js";
import type { ImportFinding } from "./located.js";

/** The key node of `path` (dot-separated; numbers index sequences), or null. */
function findPair(doc: Document, path: string): { pair?: Pair; node: Node | null } {
  const parts = path.split(".");
  let node: unknown = doc.contents;
  let pair: Pair | undefined;
  for (const p of parts) {
    if (isMap(node)) {
      pair = node.items.find((it) => isScalar(it.key) && String(it.key.value) === p) as
        | Pair
        | undefined;
      node = pair?.value;
    } else if (isSeq(node)) {
      pair = undefined;
      node = node.items[Number(p)];
    } else return { node: null };
  }
  return { pair, node: (node as Node) ?? null };
}

const commentText = (lines: string[]) => lines.map((l) => ` ${l}`).join("\n");

export function renderImportedYaml(
  inf: Inferred,
  meta: { file: string; findings: ImportFinding[] },
): string {
  const doc = new Document(inf.topology as TopologyFile);
  // NIC entries and short lists in flow style, like the examples.
  const vms = doc.get("vms", true);
  if (isMap(vms))
    for (const it of vms.items) {
      const nics = isMap(it.value) ? it.value.get("nics", true) : null;
      if (isSeq(nics))
        for (const n of nics.items) {
          if (!(n instanceof YAMLMap)) continue;
          n.flow = true;
          // Quoted like the examples: YAML 1.1 readers (cloud-init's) take 12:34:56 for a number.
          const mac = n.get("mac", true);
          if (mac instanceof Scalar) mac.type = Scalar.QUOTE_DOUBLE;
        }
      if (isSeq(nics) && nics.items.length === 0) nics.flow = true;
    }
  if (isMap(vms) && vms.items.length === 0) vms.flow = true;
  const nets = doc.get("networks", true);
  if (isMap(nets) && nets.items.length === 0) nets.flow = true;
  for (const [path, lines] of inf.above) {
    const { pair, node } = findPair(doc, path);
    const target = pair?.key ?? node;
    if (target && (isScalar(target) || isMap(target) || isSeq(target)))
      (target as Scalar).commentBefore = commentText(lines);
  }
  for (const [path, text] of inf.after) {
    const { node } = findPair(doc, path);
    if (node && isScalar(node)) node.comment = ` ${text}`;
  }
  const warnings = meta.findings.filter((f) => f.severity !== "note");
  const notes = meta.findings.filter((f) => f.severity === "note");
  const header = [
    `Imported by \`qnet import\` from ${meta.file}. Check it with \`qnet plan\` before \`qnet up\`.`,
    "Comments above each part say which lines it came from.",
  ];
  if (warnings.length) {
    header.push("", "Warnings (what could not be kept as written):");
    for (const w of warnings) header.push(`  line ${w.loc.line}: ${w.message}`);
  }
  if (notes.length) {
    header.push("", "Not imported because qnet does it itself, or with no network meaning:");
    for (const n of notes) header.push(`  line ${n.loc.line}: ${n.message}`);
  }
  doc.commentBefore = commentText(header.map((h) => h.replace(/\n/g, " ")));
  return doc.toString({ lineWidth: 0, flowCollectionPadding: true });
}
