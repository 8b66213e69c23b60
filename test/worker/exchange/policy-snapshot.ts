// Builds the KV policy snapshot for the exchange integration tests, exactly as `policies push` does.
import { buildSnapshot } from "../../../src/policy/snapshot-format";
import type { IssuerConfig, RuleSpec, Target } from "../../../src/types";

export async function buildTestSnapshot(parts: {
  issuers: IssuerConfig[];
  targets: Target[];
  rules: RuleSpec[];
}): Promise<string> {
  const { text } = await buildSnapshot(parts, { sourceDigest: "0".repeat(64), createdAt: new Date().toISOString() });
  return text;
}
