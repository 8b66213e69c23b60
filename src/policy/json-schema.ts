// JSON Schema (draft 2020-12) of a policy source file, for editor completion and checks, e.g. with
// `# yaml-language-server: $schema=./schema.json` at the top of a policy file. Generated from the same
// field descriptions the validator uses (policy-schema.ts); `gatepass policies validate` stays the authority
// (cross-file names, lint and canonical URLs are beyond what JSON Schema can say).

import { policyFileSchema } from "./policy-schema";
import type { JsonSchema } from "./shape-spec";

export function policyJsonSchema(): JsonSchema {
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "gatepass policy file",
    ...policyFileSchema(),
  };
}
