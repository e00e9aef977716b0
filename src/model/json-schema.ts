// The published JSON Schema of the topology file, generated from the same zod schema the validator uses.
import { z } from "zod";
import { TopologySchema } from "./schema.js";

export function topologyJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(TopologySchema, { target: "draft-2020-12", io: "input" }),
    $id: "https://qnet.invalid/schema/qnet.schema.json",
    title: "qnet topology file",
  };
}
