// The GitLab CI/CD component (templates/gatepass.yml) as GitLab includes it: its `spec:` header, and
// its jobs with `$[[ inputs.x ]]` interpolated after the values are checked against the inputs'
// options, regex and defaults (GitLab's rules; RE2 and JavaScript agree on these simple patterns).
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";

export const COMPONENT_FILE = path.resolve(import.meta.dirname, "../../templates/gatepass.yml");

export interface InputSpec {
  description?: string;
  default?: string;
  options?: string[];
  regex?: string;
  type?: string;
}

export interface ComponentJob {
  id_tokens?: Record<string, { aud: string }>;
  variables?: Record<string, string>;
  extends?: string;
  before_script?: string[];
}

export const INTERPOLATION = /\$\[\[\s*inputs\.([\w-]+)\s*\]\]/g;

/** The header's inputs and the configuration text after the `---` separator. */
export function readComponent(text = readFileSync(COMPONENT_FILE, "utf8")): {
  inputs: Record<string, InputSpec>;
  body: string;
} {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs) || docs.length !== 2)
    throw new Error("a component is a spec header and its configuration, separated by ---");
  for (const doc of docs) if (doc.errors.length > 0) throw new Error(doc.errors.map((e) => e.message).join("\n"));
  const header = docs[0]!.toJS() as { spec?: { inputs?: Record<string, InputSpec> } };
  if (Object.keys(header).join() !== "spec" || !header.spec?.inputs)
    throw new Error("the header holds spec: inputs: only");
  return { inputs: header.spec.inputs, body: text.slice(docs[1]!.range[0]) };
}

/** The component's jobs for these include inputs, as GitLab would add them to a pipeline. */
export function includeComponent(given: Record<string, string>, text?: string): Record<string, ComponentJob> {
  const { inputs, body } = readComponent(text);
  const values: Record<string, string> = {};
  for (const [name, spec] of Object.entries(inputs)) {
    const value = given[name] ?? spec.default;
    if (value === undefined) throw new Error(`input ${name} is required`);
    if (spec.options && !spec.options.includes(value))
      throw new Error(`input ${name}: ${value} is not one of ${spec.options.join(", ")}`);
    if (spec.regex && !new RegExp(spec.regex).test(value))
      throw new Error(`input ${name}: ${JSON.stringify(value)} does not match ${spec.regex}`);
    values[name] = value;
  }
  for (const name of Object.keys(given)) if (!(name in inputs)) throw new Error(`unknown input ${name}`);
  const interpolated = body.replace(INTERPOLATION, (_match, name: string) => values[name]!);
  const docs = parseAllDocuments(interpolated);
  if (!Array.isArray(docs) || docs.length !== 1 || docs[0]!.errors.length > 0)
    throw new Error("the interpolated configuration does not parse");
  return docs[0]!.toJS() as Record<string, ComponentJob>;
}
