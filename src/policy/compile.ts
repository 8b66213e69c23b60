// PLACEHOLDER — replaced by the policy issue (#3): validation, index compilation, lint.
import type { IssuerConfig, PolicySnapshot, Target } from "../types";

export interface CompiledPolicy {
  readonly version: string;
  readonly snapshot: PolicySnapshot;
  readonly issuers: readonly IssuerConfig[];
  readonly targets: ReadonlyMap<string, Target>;
}

export async function loadSnapshot(text: string): Promise<CompiledPolicy> {
  const snapshot = JSON.parse(text) as PolicySnapshot;
  return {
    version: snapshot.version,
    snapshot,
    issuers: snapshot.issuers,
    targets: new Map(snapshot.targets.map((t) => [t.name, t])),
  };
}
