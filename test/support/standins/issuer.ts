// Stand-in OIDC issuers (GitLab-shaped; GitHub-shaped with discovery.jwks_uri at /.well-known/jwks): discovery + JWKS under `/issuer/<name>/...`, one independent
// issuer per name so test files never share state. Issuer URL: `${STANDIN_URL}/issuer/<name>`.
//   GET  /issuer/<name>/.well-known/openid-configuration   discovery (jwks_uri → .../oauth/discovery/keys)
//   GET  /issuer/<name>/oauth/discovery/keys               the JWKS, with the scenario's Cache-Control
//   GET  /issuer/<name>/moved/keys                         the JWKS again (target of same-origin redirects)
//   GET  /issuer/<name>/.well-known/jwks                   the JWKS again, where GitHub Actions' issuer serves it
//                                                          (a GitHub-shaped stand-in sets discovery.jwks_uri to it)
//   PUT  /issuer/<name>/_control                           set the IssuerScenario (replaces it, resets counts)
//   GET  /issuer/<name>/_stats                             { discovery, jwks } request counts
import type { IncomingMessage, ServerResponse } from "node:http";
import type { StandinHandler } from "../standins";

/** How an endpoint misbehaves. */
export type IssuerFault =
  | "fail" // HTTP 500
  | "hang" // never answers (until the server closes)
  | "stall-body" // 200 and the start of a body, then nothing more
  | "not-json" // 200 with an HTML page (a login page in front of the issuer)
  | "oversize" // 200 with a body over every cap, Content-Length declared
  | "oversize-chunked" // same, streamed without Content-Length
  | "redirect-same" // 302 to /moved/keys on the same origin
  | "redirect-loop" // 302 to the very same URL, forever
  | "redirect-foreign"; // 302 to the same path on another origin (localhost instead of 127.0.0.1)

export interface IssuerScenario {
  /** The JWKS served (default: no keys). */
  jwks?: { keys: unknown[] };
  /** Cache-Control of the JWKS response (default: GitLab's "max-age=86400"). */
  cacheControl?: string | null;
  /** Overrides merged into the discovery document (e.g. an internal jwks_uri). */
  discovery?: Record<string, unknown>;
  faults?: { discovery?: IssuerFault; jwks?: IssuerFault };
}

export interface IssuerStats {
  discovery: number;
  jwks: number;
}

interface IssuerState {
  scenario: IssuerScenario;
  stats: IssuerStats;
}

const issuers = new Map<string, IssuerState>();
const PREFIX = /^\/issuer\/([A-Za-z0-9_.-]{1,100})(\/.*)$/;

export const issuerHandler: StandinHandler = (req, res, body) => {
  const url = new URL(req.url ?? "/", "http://standin");
  const match = PREFIX.exec(url.pathname);
  if (!match) return false;
  const name = match[1]!;
  const path = match[2]!;
  const state = issuers.get(name) ?? { scenario: {}, stats: { discovery: 0, jwks: 0 } };
  issuers.set(name, state);

  if (path === "/_control" && req.method === "PUT") {
    issuers.set(name, { scenario: JSON.parse(body) as IssuerScenario, stats: { discovery: 0, jwks: 0 } });
    sendJson(res, 200, { ok: true });
    return true;
  }
  if (path === "/_stats" && req.method === "GET") {
    sendJson(res, 200, state.stats);
    return true;
  }

  const base = `http://${req.headers.host}/issuer/${name}`;
  if (path === "/.well-known/openid-configuration") {
    state.stats.discovery++;
    if (misbehave(req, res, state.scenario.faults?.discovery, base)) return true;
    sendJson(res, 200, {
      issuer: base,
      jwks_uri: `${base}/oauth/discovery/keys`,
      id_token_signing_alg_values_supported: ["RS256"],
      ...state.scenario.discovery,
    });
    return true;
  }
  if (path === "/oauth/discovery/keys" || path === "/moved/keys" || path === "/.well-known/jwks") {
    state.stats.jwks++;
    if (path === "/oauth/discovery/keys" && misbehave(req, res, state.scenario.faults?.jwks, base)) return true;
    const cacheControl = state.scenario.cacheControl === undefined ? "max-age=86400" : state.scenario.cacheControl;
    sendJson(res, 200, state.scenario.jwks ?? { keys: [] }, cacheControl);
    return true;
  }
  return false;
};

function misbehave(req: IncomingMessage, res: ServerResponse, fault: IssuerFault | undefined, base: string): boolean {
  switch (fault) {
    case undefined:
      return false;
    case "fail":
      res.writeHead(500, { "Content-Type": "text/plain" }).end("internal error");
      return true;
    case "hang":
      res.on("close", () => undefined);
      return true;
    case "not-json":
      res.writeHead(200, { "Content-Type": "text/html" }).end("<html><body>Sign in</body></html>");
      return true;
    case "stall-body":
      res.writeHead(200, { "Content-Type": "application/json" });
      res.write('{"keys":[');
      return true;
    case "oversize": {
      const filler = `{"keys":[],"pad":"${"x".repeat(200 * 1024)}"}`;
      res
        .writeHead(200, { "Content-Type": "application/json", "Content-Length": String(Buffer.byteLength(filler)) })
        .end(filler);
      return true;
    }
    case "oversize-chunked": {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.write('{"keys":[],"pad":"');
      for (let i = 0; i < 50; i++) res.write("x".repeat(8 * 1024));
      res.end('"}');
      return true;
    }
    case "redirect-same":
      res.writeHead(302, { Location: `${new URL(base).pathname}/moved/keys` }).end();
      return true;
    case "redirect-loop":
      res.writeHead(302, { Location: new URL(req.url ?? "/", base).pathname }).end();
      return true;
    case "redirect-foreign": {
      const foreign = new URL(req.url ?? "/", base);
      foreign.hostname = "localhost";
      res.writeHead(302, { Location: foreign.href }).end();
      return true;
    }
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown, cacheControl?: string | null): void {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (cacheControl) headers["Cache-Control"] = cacheControl;
  res.writeHead(status, headers).end(JSON.stringify(body));
}

// ---- client side, used by tests inside workerd ----------------------------------------------

export function standinIssuerUrl(standinUrl: string, name: string): string {
  return `${standinUrl}/issuer/${name}`;
}

export async function setIssuerScenario(standinUrl: string, name: string, scenario: IssuerScenario): Promise<void> {
  const res = await fetch(`${standinIssuerUrl(standinUrl, name)}/_control`, {
    method: "PUT",
    body: JSON.stringify(scenario),
  });
  if (!res.ok) throw new Error(`stand-in issuer control failed: ${res.status}`);
  await res.arrayBuffer();
}

export async function issuerStats(standinUrl: string, name: string): Promise<IssuerStats> {
  const res = await fetch(`${standinIssuerUrl(standinUrl, name)}/_stats`);
  return (await res.json()) as IssuerStats;
}
