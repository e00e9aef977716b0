// Writes schema/qnet.schema.json from the zod schema (run by `npm run build`).
import { mkdirSync, writeFileSync } from "node:fs";
import { topologyJsonSchema } from "../src/model/json-schema.js";

mkdirSync("schema", { recursive: true });
writeFileSync("schema/qnet.schema.json", `${JSON.stringify(topologyJsonSchema(), null, 2)}\n`);
