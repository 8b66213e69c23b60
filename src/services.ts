// Per-isolate services: created once with the injected deps, holding the in-memory caches that keep
// the hot path free of KV reads and network calls.

import { SeenIdentityRecorder } from "./audit/seen-identities";
import { AuditWriter } from "./audit/audit-writer";
import type { Deps } from "./deps";
import { LOG_JUNK_LINES_PER_SECOND } from "./limits";
import { RequestLog } from "./log";
import { Signer } from "./signing-keys/isolate-signer";
import { PolicyStore } from "./policy/active-policy";
import { Verifier } from "./verify/verifier";

export interface Services {
  deps: Deps;
  policies: PolicyStore;
  verifier: Verifier;
  audit: AuditWriter;
  /** Request log lines, junk ones under a per-second budget. */
  requestLog: RequestLog;
  seen: SeenIdentityRecorder;
  signer: Signer;
}

export function createServices(deps: Deps): Services {
  return {
    deps,
    policies: new PolicyStore(deps),
    verifier: new Verifier(deps),
    audit: new AuditWriter(deps),
    requestLog: new RequestLog(deps.now, LOG_JUNK_LINES_PER_SECOND),
    seen: new SeenIdentityRecorder(deps),
    signer: new Signer(deps),
  };
}
