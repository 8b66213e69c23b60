// Drives the real app (real KV/D1 bindings, real loopback upstreams) with per-file state: a CI issuer
// served by the stand-in (tests sign its tokens), a policy snapshot in KV naming targets whose
// upstreams live in this file's stand-in namespace, and a fixed signing key secret so the stand-ins
// can trust gatepass's published JWKS.
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";
import { createApp } from "../../../src/app";
import { AuditWriter } from "../../../src/audit/audit-writer";
import { JunkBudget } from "../../../src/audit/junk-budget";
import { RequestLog } from "../../../src/log";
import { createServices } from "../../../src/services";
import { ACTIVE_SNAPSHOT_KEY } from "../../../src/policy/active-policy";
import type { Deps } from "../../../src/deps";
import type { IssuerConfig, RuleSpec, Target } from "../../../src/types";
import type { Scenario } from "../../support/standins/upstreams";
import {
  awsTarget,
  azureTarget,
  CI_CLAIMS,
  deps,
  gcpTarget,
  ISSUER,
  oidcTarget,
  setScenario,
  testSecret,
  upstreamBase,
  upstreamVars,
  VAULT_ALGS,
  vaultTarget,
  WIP,
  SA,
} from "./fixtures";
import { buildTestSnapshot } from "./policy-snapshot";

export const CI_AUDIENCE = "gatepass";

export interface Harness {
  ns: string;
  ciIssuerUrl: string;
  targets: Target[];
  /** A CI token for the file's issuer; claims override the GitLab defaults. */
  ciToken(claims?: Record<string, unknown>, options?: { ttl?: number }): Promise<string>;
  /** Sends a request through the app with this file's env (vars override per call). */
  request(path: string, init?: RequestInit, vars?: Record<string, unknown>): Promise<Response>;
  /** Resets the upstream stand-ins (trusting gatepass's JWKS) and the CI issuer. */
  scenario(scenario?: Omit<Scenario, "trust" | "ciJwks">): Promise<void>;
  /** Everything console.log/warn/error printed since the last call. */
  takeLogs(): string;
}

/**
 * `rule` overrides fields of the file's single policy rule (e.g. max_uses_per_job); `deps` the app's clock or fetch;
 * `issuer` fields of its CI issuer (kind: github) and `ciClaims` the claims its tokens carry (default: GitLab's).
 */
export async function createHarness(
  options: {
    rule?: Partial<RuleSpec>;
    deps?: Partial<Deps>;
    issuer?: Partial<IssuerConfig>;
    ciClaims?: Record<string, unknown>;
  } = {},
): Promise<Harness> {
  const baseClaims = options.ciClaims ?? CI_CLAIMS;
  const ns = crypto.randomUUID();
  const ciIssuerUrl = `${upstreamBase(ns)}/ci`;
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const kid = "ci-key-1";
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" };
  const secret = JSON.stringify(await testSecret());

  const targets: Target[] = [
    gcpTarget({ id_token_audiences: ["https://run.example.app"] }),
    gcpTarget({ name: "gcp-federated", service_account: undefined }),
    awsTarget({ max_lifetime_seconds: 7200 }),
    azureTarget(),
    vaultTarget(ns),
    oidcTarget(),
  ];
  const issuer: IssuerConfig = {
    name: "ci",
    url: ciIssuerUrl,
    kind: "gitlab",
    aliases: [],
    audiences: [CI_AUDIENCE],
    algorithms: ["RS256"],
    keys: { source: "discovery" },
    max_token_age_seconds: 3600,
    accept_legacy_ci_job_jwt: false,
    ...options.issuer,
  };
  const snapshot = await buildTestSnapshot({
    issuers: [issuer],
    targets,
    rules: [
      {
        name: "infra-main",
        issuer: "ci",
        match: { project_path: "platform/infra", ref_type: "branch", ref: "main", ref_protected: "true" },
        allow: targets.map((t) => t.name),
        ...options.rule,
      },
    ],
  });
  await env.POLICIES.put(ACTIVE_SNAPSHOT_KEY, snapshot);

  // No audit linger: each request's waitOnExecutionContext would otherwise wait 250 ms for a batch
  // that never grows here (the writer's batching has its own tests in audit/audit.test.ts). No junk
  // budgets either: these tests look up each refusal's own audit row and log line, and a file sending
  // more than 20 refusals in a second would see them folded (the budgets have their own tests in
  // audit/budget.test.ts).
  const appDeps = deps(options.deps);
  const unlimited = Number.POSITIVE_INFINITY;
  const app = createApp(appDeps, {
    ...createServices(appDeps),
    audit: new AuditWriter(appDeps, async () => {}, new JunkBudget(unlimited, unlimited)),
    requestLog: new RequestLog(appDeps.now, unlimited),
  });
  const baseVars = {
    GATEPASS_ISSUER: ISSUER,
    GATEPASS_ENV: "development",
    GATEPASS_SIGNING_KEYS: secret,
    ...upstreamVars(ns),
  };

  let logs = "";
  for (const level of ["log", "warn", "error"] as const) {
    const original = console[level].bind(console);
    console[level] = (...args: unknown[]) => {
      logs += `${args.map(String).join(" ")}\n`;
      original(...args);
    };
  }

  const harness: Harness = {
    ns,
    ciIssuerUrl,
    targets,
    async ciToken(claims = {}, options = {}) {
      const now = Math.floor(Date.now() / 1000);
      return new SignJWT({ ...baseClaims, ...claims })
        .setProtectedHeader({ alg: "RS256", typ: "JWT", kid })
        .setIssuer(ciIssuerUrl)
        .setAudience(CI_AUDIENCE)
        .setIssuedAt(now)
        .setNotBefore(now - 5)
        .setExpirationTime(now + (options.ttl ?? 600))
        .sign(privateKey);
    },
    async request(path, init = {}, vars = {}) {
      const ctx = createExecutionContext();
      const res = await app.request(`https://gatepass.test${path}`, init, { ...env, ...baseVars, ...vars }, ctx);
      await waitOnExecutionContext(ctx);
      return res;
    },
    async scenario(scenario = {}) {
      const jwks = (await (await harness.request("/.well-known/jwks.json")).json()) as { keys: JWK[] };
      await setScenario(ns, {
        trust: { issuer: ISSUER, jwks: jwks as NonNullable<Scenario["trust"]["jwks"]> },
        ciJwks: { keys: [publicJwk] } as NonNullable<Scenario["ciJwks"]>,
        gcp: { provider: WIP, serviceAccounts: { [SA]: ["target:gcp-deploy"] } },
        aws: {
          roles: {
            "arn:aws:iam::111122223333:role/deploy": {
              sub: "target:aws-deploy",
              aud: "sts.amazonaws.com",
              maxSessionDuration: 7200,
            },
          },
        },
        azure: {
          apps: {
            "11111111-2222-3333-4444-555555555555": {
              tenant: "00000000-0000-0000-0000-00000000000a",
              sub: "target:azure-deploy",
            },
          },
        },
        vault: {
          jwtSupportedAlgs: VAULT_ALGS,
          roles: {
            ci: {
              mount: "gatepass",
              boundAudiences: ["vault"],
              boundSubject: "target:vault-ci",
              ttl: 900,
              policies: ["deploy"],
            },
          },
        },
        ...scenario,
      });
    },
    takeLogs() {
      const taken = logs;
      logs = "";
      return taken;
    },
  };
  return harness;
}

export function bearer(token: string, extra: Record<string, string> = {}): Record<string, string> {
  return { Authorization: `Bearer ${token}`, ...extra };
}

export const FORM = { "Content-Type": "application/x-www-form-urlencoded" };
