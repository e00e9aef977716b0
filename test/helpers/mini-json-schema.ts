// A small JSON Schema checker for the keywords qnet's generated schema uses (no ajv in the project).

type Schema = Record<string, unknown>;

const typeOf = (v: unknown) =>
  v === null ? "null" : Array.isArray(v) ? "array" : Number.isInteger(v) ? "integer" : typeof v;

/** Errors (JSON pointer: message) of `value` against `schema`; throws on a keyword it does not know. */
export function checkJsonSchema(schema: Schema, value: unknown, at = ""): string[] {
  const known = new Set([
    "$schema",
    "$id",
    "title",
    "description",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "propertyNames",
    "items",
    "oneOf",
    "const",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
  ]);
  for (const k of Object.keys(schema))
    if (!known.has(k)) throw new Error(`unsupported keyword ${k} at ${at}`);
  const errs: string[] = [];
  const fail = (m: string) => errs.push(`${at || "/"}: ${m}`);
  const t = schema.type as string | undefined;
  if (t) {
    const actual = typeOf(value);
    const ok = t === actual || (t === "number" && actual === "integer");
    if (!ok) return [`${at || "/"}: expected ${t}, found ${actual}`];
  }
  if ("const" in schema && value !== schema.const) fail(`expected ${JSON.stringify(schema.const)}`);
  if (schema.enum && !(schema.enum as unknown[]).includes(value)) fail(`not in enum`);
  if (typeof value === "string") {
    if (schema.pattern && !new RegExp(schema.pattern as string, "u").test(value))
      fail(`does not match ${schema.pattern}`);
    if (typeof schema.minLength === "number" && value.length < schema.minLength) fail("too short");
  }
  if (typeof value === "number") {
    if (typeof schema.minimum === "number" && value < schema.minimum) fail("below minimum");
    if (typeof schema.maximum === "number" && value > schema.maximum) fail("above maximum");
  }
  if (Array.isArray(value) && schema.items) {
    for (const [i, v] of value.entries()) {
      errs.push(...checkJsonSchema(schema.items as Schema, v, `${at}/${i}`));
    }
  }
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    for (const r of (schema.required ?? []) as string[])
      if (!(r in obj)) fail(`missing required ${r}`);
    for (const [k, v] of Object.entries(obj)) {
      if (schema.propertyNames)
        errs.push(...checkJsonSchema(schema.propertyNames as Schema, k, `${at}/${k}(name)`));
      if (k in props) errs.push(...checkJsonSchema(props[k]!, v, `${at}/${k}`));
      else if (schema.additionalProperties === false) fail(`unknown property ${k}`);
      else if (schema.additionalProperties && typeof schema.additionalProperties === "object") {
        errs.push(...checkJsonSchema(schema.additionalProperties as Schema, v, `${at}/${k}`));
      }
    }
  }
  if (schema.oneOf) {
    const matches = (schema.oneOf as Schema[]).filter(
      (s) => checkJsonSchema(s, value, at).length === 0,
    ).length;
    if (matches !== 1) fail(`matches ${matches} of oneOf, expected exactly 1`);
  }
  return errs;
}
