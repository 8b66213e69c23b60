// The isolate's signing keys: the secret is parsed and imported once, then reused by every request.
// In a local run (development, issuer on loopback) without a secret, an ephemeral key set is generated
// once per isolate so that local runs and tests need no manual step; anywhere else a missing or
// invalid secret fails closed.

import { isLoopbackHost, type Config } from "../config";
import type { Deps } from "../deps";
import { nowSeconds } from "../deps";
import { GatepassError } from "../errors";
import { log } from "../log";
import { KeyRing, parseSigningKeySecret } from "./signing-key-secret";
import { generateSecret } from "./signing-key-rotation";

export class Signer {
  private loaded: { secret: string | undefined; ring: Promise<KeyRing> } | undefined;

  constructor(private readonly deps: Deps) {}

  keyRing(config: Config): Promise<KeyRing> {
    if (!this.loaded || this.loaded.secret !== config.signingKeys) {
      this.loaded = { secret: config.signingKeys, ring: this.load(config) };
    }
    return this.loaded.ring;
  }

  private async load(config: Config): Promise<KeyRing> {
    if (config.signingKeys === undefined) {
      // Only a local run (development, issuer on loopback): a deployed Worker left in development mode
      // by mistake must not sign with keys that differ per isolate and vanish with it.
      if (!config.development || !isLoopbackHost(new URL(config.issuerUrl).hostname))
        throw new GatepassError("signing_unavailable");
      log("warn", "signing_keys_ephemeral", { reason: "GATEPASS_SIGNING_KEYS unset in development" });
      return KeyRing.import(await generateSecret(["ES256", "RS256"], nowSeconds(this.deps)));
    }
    try {
      return await KeyRing.import(parseSigningKeySecret(config.signingKeys));
    } catch (err) {
      // The reason names fields, never key material.
      log("error", "signing_keys_invalid", { reason: err instanceof Error ? err.message : String(err) });
      throw new GatepassError("signing_unavailable", {
        description: "gatepass's signing keys are misconfigured; an admin must fix GATEPASS_SIGNING_KEYS.",
        cause: err,
      });
    }
  }
}
