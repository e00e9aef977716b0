// The published JSON Schema: the committed file is the generator's output, and every example conforms.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { parse } from "yaml";
import { topologyJsonSchema } from "../../src/model/json-schema.js";
import { REPO_ROOT } from "../helpers/golden.js";
import { checkJsonSchema } from "../helpers/mini-json-schema.js";
import { errorsOf } from "../helpers/topology.js";

const committed = readFileSync(join(REPO_ROOT, "schema", "qnet.schema.json"), "utf8");
const schema = topologyJsonSchema();
const examples = readdirSync(join(REPO_ROOT, "examples"))
  .filter((f) => f.endsWith(".yaml"))
  .sort();

describe("JSON Schema", () => {
  test("schema/qnet.schema.json equals topologyJsonSchema() (run `npm run build` to regenerate)", () => {
    assert.equal(committed, `${JSON.stringify(schema, null, 2)}\n`);
  });
  test("is a closed draft 2020-12 object schema with the file's top-level keys", () => {
    assert.equal(schema.$schema, "https://json-schema.org/draft/2020-12/schema");
    assert.equal(schema.additionalProperties, false);
    assert.deepEqual(Object.keys(schema.properties as object).sort(), [
      "$schema",
      "boot",
      "hosts",
      "name",
      "netns",
      "networks",
      "sshKey",
      "user",
      "vms",
    ]);
    assert.deepEqual((schema.required as string[]).sort(), ["name", "networks", "vms"]);
  });
  for (const file of examples) {
    const text = readFileSync(join(REPO_ROOT, "examples", file), "utf8");
    test(`examples/${file} references the schema and conforms to it`, () => {
      assert.match(
        text.split("\n")[0]!,
        /^# yaml-language-server: \$schema=\.\.\/schema\/qnet\.schema\.json$/,
      );
      assert.deepEqual(checkJsonSchema(schema, parse(text)), []);
      assert.deepEqual(errorsOf(text), []);
    });
  }
  test("the schema rejects what the validator rejects for shape (unknown key, bad name, bad type)", () => {
    const base = {
      name: "lab",
      networks: { lan: { type: "bridge", subnet: "10.0.2.0/24" } },
      vms: { vm0: { nics: [{ network: "lan" }] } },
    };
    assert.deepEqual(checkJsonSchema(schema, base), []);
    const bad = [
      { ...base, extra: 1 },
      { ...base, name: "bad name" },
      { ...base, networks: { lan: { type: "bridg", subnet: "10.0.2.0/24" } } },
      {
        ...base,
        networks: {
          lan: { type: "bridge", subnet: "10.0.2.0/24", bridge: "a-very-long-bridge-name" },
        },
      },
      { ...base, vms: { vm0: { nics: [{ network: "lan", model: "e1000,romfile=x" }] } } },
      { ...base, vms: { vm0: { nics: [], memory: 1 } } },
    ];
    for (const b of bad) {
      assert.notDeepEqual(checkJsonSchema(schema, b), [], JSON.stringify(b));
      assert.notDeepEqual(errorsOf(JSON.stringify(b)), [], JSON.stringify(b));
    }
  });
});
