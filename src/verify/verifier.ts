// PLACEHOLDER — replaced by the verification issue (#2).
import type { Env } from "../config";
import type { Deps } from "../deps";
import { GatepassError } from "../errors";
import type { IssuerConfig, VerifiedIdentity } from "../types";

export class Verifier {
  constructor(private readonly deps: Deps) {}

  async verify(
    _token: string,
    _issuers: readonly IssuerConfig[],
    _env: Env,
    _waitUntil: (promise: Promise<unknown>) => void,
  ): Promise<VerifiedIdentity> {
    void this.deps;
    throw new GatepassError("issuer_unknown");
  }
}
