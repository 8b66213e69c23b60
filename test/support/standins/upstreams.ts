// Loopback stand-ins for the clouds' token services, built from their public API documentation:
// Google STS + IAM Credentials, AWS STS (XML), Entra ID, Vault.
// Like the real clouds, each verifies the minted token's signature with gatepass's own keys —
// fetched through gatepass's discovery, or uploaded like GCP's `jwksJson` — and its iss/aud/sub/times.
//
// Every test works in its own namespace: `/up/<ns>/...`, configured with `PUT /up/<ns>/_control`
// (a Scenario) and inspected with `GET /up/<ns>/_requests`. Service paths under a namespace:
//   POST gcp/sts/v1/token                                        (form or JSON)
//   POST gcp/iam/v1/projects/-/serviceAccounts/<email>:generateAccessToken | :generateIdToken
//   POST aws/<region>/                                           (Query API form → XML)
//   POST azure/<tenant>/oauth2/v2.0/token
//   POST vault/v1/auth/<mount>/login
//   GET  ci/.well-known/openid-configuration, ci/jwks             (a CI issuer whose tokens tests sign)
import { createPublicKey, randomBytes, verify as verifySignature, type JsonWebKey } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { StandinHandler } from "../standins";

export type UpstreamService = "gcp-sts" | "gcp-iam" | "aws-sts" | "azure" | "vault";

/** A scripted answer, consumed once, before the service's normal behaviour. */
export type Fault =
  | { status: number; body: string; contentType?: string; location?: string }
  | { delayMs: number }
  | { oversize: true }
  | { drop: true };

export interface Scenario {
  /** The issuer the services trust. Keys: `jwks` if given, else fetched via `${issuer}/.well-known/openid-configuration`. */
  trust: { issuer: string; jwks?: { keys: JsonWebKey[] } };
  gcp?: {
    /** projects/N/locations/global/workloadIdentityPools/P/providers/X */
    provider: string;
    /** Attribute condition: every listed claim must equal the value. */
    condition?: Record<string, string>;
    /** Service account email → federated subjects (google.subject = sub) allowed to impersonate it. */
    serviceAccounts?: Record<string, string[]>;
  };
  /** hostileSecret: the secret key carries XML-escaped `&<'"` (proves entity decoding and shell quoting). */
  aws?: { roles: Record<string, { sub: string; aud: string; maxSessionDuration?: number }>; hostileSecret?: boolean };
  azure?: { apps: Record<string, { tenant: string; sub: string; aud?: string }> };
  /** jwtSupportedAlgs: the mount's `jwt_supported_algs`; unset, Vault's JWT login accepts every algorithm it knows. */
  /** A role's namespace (Vault Enterprise / HCP) must arrive as X-Vault-Namespace; none: the root namespace. */
  vault?: {
    jwtSupportedAlgs?: string[];
    roles: Record<
      string,
      {
        mount: string;
        namespace?: string;
        boundAudiences: string[];
        boundSubject: string;
        ttl: number;
        policies: string[];
      }
    >;
  };
  faults?: Partial<Record<UpstreamService, Fault[]>>;
  /** Public keys of a CI issuer served at `/up/<ns>/ci` (discovery + JWKS), for tests that sign CI tokens. */
  ciJwks?: { keys: JsonWebKey[] };
  /**
   * The stand-ins' clock (milliseconds since the epoch), fixed: the expiry times they send and check.
   * A test that gives gatepass the same clock (deps.now) asserts exact lifetimes; with the real clock on
   * both sides, the stand-in's second and workerd's can differ by one (`1201 <= 1200`). Unset: Date.now().
   */
  now?: number;
}

export interface CapturedRequest {
  service: UpstreamService;
  path: string;
  headers: Record<string, string>;
  body: Record<string, unknown>;
  /** Claims of the verified minted token (when the request carried one and it verified). */
  claims?: Record<string, unknown>;
  header?: Record<string, unknown>;
}

interface Namespace {
  scenario: Scenario;
  requests: CapturedRequest[];
  federated: Map<string, string>;
}

/** The namespace's clock in milliseconds: its scenario's fixed time, or the real one. */
const clockMs = (ns: Namespace): number => ns.scenario.now ?? Date.now();

const namespaces = new Map<string, Namespace>();
const MAX_NAMESPACES = 1000;

export const upstreamsHandler: StandinHandler = async (req, res, body) => {
  const url = new URL(req.url ?? "/", "http://standin");
  const match = /^\/up\/([\w-]{1,64})\/(.*)$/.exec(url.pathname);
  if (!match) return false;
  const [, id, rest] = match as unknown as [string, string, string];
  if (rest === "_control" && req.method === "PUT") {
    if (namespaces.size >= MAX_NAMESPACES) namespaces.delete(namespaces.keys().next().value!);
    namespaces.set(id, { scenario: JSON.parse(body) as Scenario, requests: [], federated: new Map() });
    return send(res, 204, "", "text/plain");
  }
  const ns = namespaces.get(id);
  if (!ns) return send(res, 404, '{"error":"unknown namespace"}');
  if (rest === "_requests" && req.method === "GET") return send(res, 200, JSON.stringify(ns.requests));
  if (req.method === "GET" && ns.scenario.ciJwks) {
    const issuer = `http://${req.headers.host}/up/${id}/ci`;
    if (rest === "ci/.well-known/openid-configuration")
      return send(res, 200, JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    if (rest === "ci/jwks") return send(res, 200, JSON.stringify(ns.scenario.ciJwks));
  }

  const service = serviceOf(rest);
  if (!service || req.method !== "POST") return send(res, 404, '{"error":"not_found"}');
  const captured: CapturedRequest = { service, path: rest, headers: pickHeaders(req), body: parseBody(req, body) };
  ns.requests.push(captured);

  const fault = ns.scenario.faults?.[service]?.shift();
  if (fault) {
    if ("delayMs" in fault) await new Promise((r) => setTimeout(r, fault.delayMs));
    else if ("oversize" in fault) return send(res, 200, `{"pad":"${"x".repeat(300 * 1024)}"}`);
    else if ("drop" in fault) {
      req.socket.destroy();
      return true;
    } else
      return send(
        res,
        fault.status,
        fault.body,
        fault.contentType,
        fault.location === undefined ? {} : { Location: fault.location },
      );
  }
  switch (service) {
    case "gcp-sts":
      return gcpSts(ns, captured, res);
    case "gcp-iam":
      return gcpIam(ns, captured, res);
    case "aws-sts":
      return awsSts(ns, captured, res);
    case "azure":
      return azure(ns, captured, res);
    case "vault":
      return vault(ns, captured, res);
  }
};

function serviceOf(rest: string): UpstreamService | undefined {
  if (rest === "gcp/sts/v1/token") return "gcp-sts";
  if (rest.startsWith("gcp/iam/v1/projects/-/serviceAccounts/")) return "gcp-iam";
  if (/^aws\/[a-z0-9-]+\/$/.test(rest)) return "aws-sts";
  if (/^azure\/[^/]+\/oauth2\/v2\.0\/token$/.test(rest)) return "azure";
  if (/^vault\/v1\/auth\/.+\/login$/.test(rest)) return "vault";
  return undefined;
}

// ---- Google STS + IAM Credentials ---------------------------------------------------------------

async function gcpSts(ns: Namespace, captured: CapturedRequest, res: ServerResponse): Promise<boolean> {
  const b = captured.body;
  const gcp = ns.scenario.gcp;
  const error = (status: number, code: string, description: string) =>
    send(res, status, JSON.stringify({ error: code, error_description: description }));
  if (b.grant_type !== "urn:ietf:params:oauth:grant-type:token-exchange")
    return error(400, "unsupported_grant_type", "bad grant_type");
  if (b.requested_token_type !== "urn:ietf:params:oauth:token-type:access_token")
    return error(400, "invalid_request", "bad requested_token_type");
  // Google: scope is "required when exchanging an external credential".
  if (typeof b.scope !== "string" || b.scope.trim() === "") return error(400, "invalid_request", "scope is required");
  if (
    typeof b.subject_token !== "string" ||
    !String(b.subject_token_type).startsWith("urn:ietf:params:oauth:token-type:")
  ) {
    return error(400, "invalid_request", "subject_token required");
  }
  if (!gcp || b.audience !== `//iam.googleapis.com/${gcp.provider}`)
    return error(400, "invalid_target", 'The target service indicated by the "audience" parameters is invalid.');
  const allowedAud = [`//iam.googleapis.com/${gcp.provider}`, `https://iam.googleapis.com/${gcp.provider}`];
  const checked = await verifyMinted(ns, captured, String(b.subject_token), allowedAud);
  if (typeof checked === "string") return error(400, "invalid_grant", checked);
  const claims = checked;
  if (typeof claims.exp !== "number" || typeof claims.iat !== "number" || claims.exp - claims.iat >= 48 * 3600) {
    return error(400, "invalid_grant", "The lifetime of the subject token must be less than 48 hours.");
  }
  if (new TextEncoder().encode(String(claims.sub)).length > 127)
    return error(400, "invalid_request", "google.subject is too long");
  for (const [claim, value] of Object.entries(gcp.condition ?? {})) {
    if (claims[claim] !== value)
      return error(400, "unauthorized_client", "The given credential is rejected by the attribute condition.");
  }
  const token = `ya29.federated-${randomBytes(12).toString("hex")}`;
  ns.federated.set(token, String(claims.sub));
  return send(
    res,
    200,
    JSON.stringify({
      access_token: token,
      issued_token_type: "urn:ietf:params:oauth:token-type:access_token",
      token_type: "Bearer",
      expires_in: 3599,
    }),
  );
}

function gcpIam(ns: Namespace, captured: CapturedRequest, res: ServerResponse): boolean {
  const error = (code: number, status: string, message: string) =>
    send(res, code, JSON.stringify({ error: { code, message, status, details: [] } }));
  const match = /^gcp\/iam\/v1\/projects\/-\/serviceAccounts\/([^/:]+):(generateAccessToken|generateIdToken)$/.exec(
    captured.path,
  );
  if (!match) return error(404, "NOT_FOUND", "unknown method");
  const email = decodeURIComponent(match[1]!);
  const subject = ns.federated.get((captured.headers.authorization ?? "").replace(/^Bearer /, ""));
  if (!subject) return error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.");
  const allowed = ns.scenario.gcp?.serviceAccounts?.[email];
  if (!allowed) return error(404, "NOT_FOUND", `Service account ${email} not found`);
  if (!allowed.includes(subject))
    return error(
      403,
      "PERMISSION_DENIED",
      "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
    );
  if (match[2] === "generateIdToken") {
    if (typeof captured.body.audience !== "string" || captured.body.audience === "")
      return error(400, "INVALID_ARGUMENT", "audience required");
    const now = Math.floor(clockMs(ns) / 1000);
    const part = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const token = `${part({ alg: "RS256", typ: "JWT" })}.${part({ iss: "https://accounts.google.com", aud: captured.body.audience, email, iat: now, exp: now + 3600 })}.c2ln`;
    return send(res, 200, JSON.stringify({ token }));
  }
  const lifetime = /^(\d+)s$/.exec(String(captured.body.lifetime ?? "3600s"));
  if (
    !lifetime ||
    Number(lifetime[1]) > 3600 ||
    !Array.isArray(captured.body.scope) ||
    captured.body.scope.length === 0
  ) {
    return error(400, "INVALID_ARGUMENT", "The lifetime or scope is invalid.");
  }
  const expireTime = new Date(clockMs(ns) + Number(lifetime[1]) * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  return send(res, 200, JSON.stringify({ accessToken: `ya29.sa-${randomBytes(12).toString("hex")}`, expireTime }));
}

// ---- AWS STS ------------------------------------------------------------------------------------

async function awsSts(ns: Namespace, captured: CapturedRequest, res: ServerResponse): Promise<boolean> {
  const b = captured.body;
  const error = (status: number, code: string, message: string) =>
    send(
      res,
      status,
      `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${message}</Message></Error><RequestId>r-1</RequestId></ErrorResponse>`,
      "text/xml",
    );
  if (b.Action !== "AssumeRoleWithWebIdentity" || b.Version !== "2011-06-15")
    return error(400, "InvalidAction", "Could not find operation");
  const name = String(b.RoleSessionName ?? "");
  if (!/^[\w+=,.@-]{2,64}$/.test(name))
    return error(
      400,
      "ValidationError",
      "1 validation error detected: Value at 'roleSessionName' failed to satisfy constraint",
    );
  const duration = Number(b.DurationSeconds ?? 3600);
  if (!Number.isInteger(duration) || duration < 900 || duration > 43200)
    return error(400, "ValidationError", "DurationSeconds out of range");
  const role = ns.scenario.aws?.roles[String(b.RoleArn)];
  const checked = await verifyMinted(ns, captured, String(b.WebIdentityToken ?? ""), role ? [role.aud] : []);
  if (typeof checked === "string")
    return error(400, "InvalidIdentityToken", "Couldn't retrieve verification key from your identity provider");
  if (!role || checked.sub !== role.sub)
    return error(403, "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity");
  if (duration > (role.maxSessionDuration ?? 3600))
    return error(
      400,
      "ValidationError",
      "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
    );
  const expiration = new Date(clockMs(ns) + duration * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  const secret = `${randomBytes(20).toString("base64")}${ns.scenario.aws?.hostileSecret ? `&<'"$(id)` : ""}`;
  const escape = (s: string) =>
    s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/'/g, "&apos;").replace(/"/g, "&quot;");
  return send(
    res,
    200,
    `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>${escape(String(checked.sub))}</SubjectFromWebIdentityToken>
    <Audience>${escape(role.aud)}</Audience>
    <AssumedRoleUser>
      <Arn>${escape(String(b.RoleArn).replace(":role/", ":assumed-role/").replace(":iam:", ":sts:"))}/${name}</Arn>
      <AssumedRoleId>AROA0000000000:${name}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>FwoGZXIvYXdzE${randomBytes(24).toString("base64")}</SessionToken>
      <SecretAccessKey>${escape(secret)}</SecretAccessKey>
      <Expiration>${expiration}</Expiration>
      <AccessKeyId>ASIA${randomBytes(8).toString("hex").toUpperCase()}</AccessKeyId>
    </Credentials>
    <Provider>${escape(ns.scenario.trust.issuer)}</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>r-2</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`,
    "text/xml",
  );
}

// ---- Entra ID -----------------------------------------------------------------------------------

async function azure(ns: Namespace, captured: CapturedRequest, res: ServerResponse): Promise<boolean> {
  const b = captured.body;
  const tenant = decodeURIComponent(captured.path.split("/")[1]!);
  const error = (code: number, error: string, aadsts: number, text: string) =>
    send(
      res,
      code,
      JSON.stringify({
        error,
        error_description: `AADSTS${aadsts}: ${text}`,
        error_codes: [aadsts],
        timestamp: new Date().toISOString(),
      }),
    );
  if (
    b.grant_type !== "client_credentials" ||
    b.client_assertion_type !== "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
  ) {
    return error(
      400,
      "invalid_request",
      900144,
      "The request body must contain the following parameter: 'grant_type'.",
    );
  }
  const app = ns.scenario.azure?.apps[String(b.client_id)];
  if (!app || app.tenant !== tenant)
    return error(400, "unauthorized_client", 700016, "Application was not found in the directory.");
  // Entra ID verifies only RSA signatures on federated assertions.
  const alg = headerAlg(String(b.client_assertion ?? ""));
  if (!/^(RS|PS)(256|384|512)$/.test(alg))
    return error(400, "invalid_client", 5002738, `Invalid JWT token. '${alg}' is not a supported signature algorithm.`);
  const checked = await verifyMinted(ns, captured, String(b.client_assertion ?? ""), [
    app.aud ?? "api://AzureADTokenExchange",
  ]);
  if (typeof checked === "string")
    return error(
      400,
      "invalid_client",
      700212,
      "No matching federated identity record found for presented assertion audience.",
    );
  if (checked.sub !== app.sub)
    return error(
      400,
      "invalid_client",
      700213,
      "No matching federated identity record found for presented assertion subject.",
    );
  if (typeof b.scope !== "string" || !b.scope.endsWith("/.default"))
    return error(400, "invalid_scope", 1002012, "The provided value for scope is not valid.");
  return send(
    res,
    200,
    JSON.stringify({
      token_type: "Bearer",
      expires_in: 3599,
      ext_expires_in: 3599,
      access_token: `eyJ0eXAi.azure-${randomBytes(12).toString("hex")}`,
    }),
  );
}

// ---- Vault --------------------------------------------------------------------------------------

async function vault(ns: Namespace, captured: CapturedRequest, res: ServerResponse): Promise<boolean> {
  const mount = /^vault\/v1\/auth\/(.+)\/login$/.exec(captured.path)![1]!;
  const error = (status: number, message: string) => send(res, status, JSON.stringify({ errors: [message] }));
  const role = ns.scenario.vault?.roles[String(captured.body.role)];
  // The mount lives in its namespace: asked for elsewhere, Vault finds no such path.
  if (role && captured.headers["x-vault-namespace"] !== role.namespace) return error(403, "permission denied");
  if (!role || role.mount !== mount) return error(400, `role "${String(captured.body.role)}" could not be found`);
  const algs = ns.scenario.vault?.jwtSupportedAlgs;
  if (algs && !algs.includes(headerAlg(String(captured.body.jwt ?? "")))) {
    return error(
      400,
      "error validating token: invalid algorithm (alg) header parameter: token signed with unexpected algorithm",
    );
  }
  const checked = await verifyMinted(ns, captured, String(captured.body.jwt ?? ""), role.boundAudiences);
  if (typeof checked === "string") return error(400, `error validating token: ${checked}`);
  if (checked.sub !== role.boundSubject) return error(400, "sub claim does not match bound subject");
  return send(
    res,
    200,
    JSON.stringify({
      request_id: "r-3",
      lease_id: "",
      renewable: false,
      lease_duration: 0,
      data: null,
      warnings: null,
      auth: {
        client_token: `hvs.${randomBytes(18).toString("base64url")}`,
        accessor: "acc",
        policies: ["default", ...role.policies],
        token_policies: role.policies,
        lease_duration: role.ttl,
        renewable: true,
        entity_id: "e-1",
        token_type: "service",
        orphan: true,
      },
    }),
  );
}

// ---- verifying gatepass's minted token like a relying party -------------------------------------

const jwksCache = new Map<string, { at: number; keys: JsonWebKey[] }>();

/** Claims of a valid token, or a reason string. */
async function verifyMinted(
  ns: Namespace,
  captured: CapturedRequest,
  token: string,
  audiences: string[],
): Promise<Record<string, unknown> | string> {
  const parts = token.split(".");
  if (parts.length !== 3) return "not a JWT";
  let header: Record<string, unknown>;
  let claims: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(parts[0]!, "base64url").toString("utf8")) as Record<string, unknown>;
    claims = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8")) as Record<string, unknown>;
  } catch {
    return "undecodable";
  }
  captured.header = header;
  const { issuer } = ns.scenario.trust;
  if (claims.iss !== issuer) return `untrusted issuer ${String(claims.iss)}`;
  let keys: JsonWebKey[];
  try {
    keys = ns.scenario.trust.jwks?.keys ?? (await discoveredKeys(issuer, String(header.kid)));
  } catch (err) {
    return `cannot fetch keys: ${String(err)}`;
  }
  const jwk = keys.find((k) => (k as { kid?: string }).kid === header.kid);
  if (!jwk) return "unknown kid";
  const alg = header.alg;
  if (alg !== "ES256" && alg !== "RS256") return "unsupported alg";
  const key = createPublicKey({ key: jwk, format: "jwk" });
  const ok = verifySignature(
    "sha256",
    Buffer.from(`${parts[0]}.${parts[1]}`),
    alg === "ES256" ? { key, dsaEncoding: "ieee-p1363" } : key,
    Buffer.from(parts[2]!, "base64url"),
  );
  if (!ok) return "bad signature";
  const now = Math.floor(clockMs(ns) / 1000);
  for (const t of ["iat", "exp", "nbf"]) if (!Number.isInteger(claims[t])) return `${t} not an integer`;
  if ((claims.exp as number) <= now) return "expired";
  if ((claims.iat as number) > now + 60 || (claims.nbf as number) > now + 60) return "not yet valid";
  if (!audiences.includes(String(claims.aud))) return `audience ${String(claims.aud)} not allowed`;
  captured.claims = claims;
  return claims;
}

/** The `alg` a JWT's header names, or "" when it has none readable. */
function headerAlg(token: string): string {
  try {
    const header: unknown = JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString("utf8"));
    return typeof header === "object" && header !== null && typeof (header as { alg?: unknown }).alg === "string"
      ? (header as { alg: string }).alg
      : "";
  } catch {
    return "";
  }
}

async function discoveredKeys(issuer: string, kid: string): Promise<JsonWebKey[]> {
  const cached = jwksCache.get(issuer);
  if (cached && Date.now() - cached.at < 60_000 && cached.keys.some((k) => (k as { kid?: string }).kid === kid))
    return cached.keys;
  const discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as {
    issuer: string;
    jwks_uri: string;
  };
  if (discovery.issuer !== issuer) throw new Error("discovery issuer mismatch");
  const jwks = (await (await fetch(discovery.jwks_uri)).json()) as { keys: JsonWebKey[] };
  jwksCache.set(issuer, { at: Date.now(), keys: jwks.keys });
  return jwks.keys;
}

// ---- plumbing -----------------------------------------------------------------------------------

function parseBody(req: IncomingMessage, body: string): Record<string, unknown> {
  if (String(req.headers["content-type"] ?? "").startsWith("application/json")) {
    try {
      return JSON.parse(body) as Record<string, unknown>;
    } catch {
      return {};
    }
  }
  return Object.fromEntries(new URLSearchParams(body));
}

function pickHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ["authorization", "content-type", "accept", "user-agent", "x-vault-namespace"]) {
    const value = req.headers[name];
    if (typeof value === "string") out[name] = value;
  }
  return out;
}

function send(
  res: ServerResponse,
  status: number,
  body: string,
  contentType = "application/json",
  headers: Record<string, string> = {},
): true {
  res.writeHead(status, { ...headers, "Content-Type": contentType }).end(body);
  return true;
}
