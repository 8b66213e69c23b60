// `policies push|plan|history|rollback --url URL`: the admin API of a running gatepass instead of
// wrangler (no Cloudflare token). The caller authenticates with the CI job's own ID token, read from the
// GATEPASS_ID_TOKEN environment variable only: a flag's value would show in process listings and logs.
// The Worker checks it, and that the active policy grants the job the route's capability.

import { isLoopbackHost } from "../../src/config";
import type { SeenIdentity } from "./policy-replay";
import type { HistoryRow } from "./policy-storage";
import { seenIdentityOf } from "./policy-storage";

export const ID_TOKEN_VARIABLE = "GATEPASS_ID_TOKEN";
const SEEN_PAGE = 5000;

/** A refusal gatepass answered: its stable code and sentence. */
export class AdminApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    description: string,
  ) {
    super(`gatepass refused (${status} ${code}): ${description}`);
  }
}

/** The URL's origin: https, or http on a loopback host (a local gatepass), nothing else in it. */
export function adminBaseUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`--url '${raw}' is not an absolute URL`);
  }
  if (url.username || url.password || url.search || url.hash)
    throw new Error("--url must not carry credentials, a query or a fragment");
  if (url.protocol !== "https:" && !(url.protocol === "http:" && isLoopbackHost(url.hostname)))
    throw new Error("--url must be https:// (http:// only on a loopback host)");
  return url.href.replace(/\/+$/, "");
}

export class AdminApi {
  constructor(
    private readonly base: string,
    private readonly token: string,
    private readonly fetchImpl: typeof fetch = fetch,
  ) {}

  /** The client for --url, with the token from GATEPASS_ID_TOKEN. */
  static fromEnvironment(url: string, env: NodeJS.ProcessEnv = process.env): AdminApi {
    const token = env[ID_TOKEN_VARIABLE]?.trim();
    if (!token)
      throw new Error(
        `--url needs the CI job's ID token in ${ID_TOKEN_VARIABLE} (id_tokens: in .gitlab-ci.yml); it is never read ` +
          `from a flag`,
      );
    return new AdminApi(adminBaseUrl(url), token);
  }

  async history(limit: number): Promise<HistoryRow[]> {
    const body = (await this.json("GET", `/v1/admin/policies/history?limit=${Math.min(limit, 100)}`)) as {
      versions: (Omit<HistoryRow, "active"> & { active: boolean })[];
    };
    return body.versions.map((v) => ({ ...v, active: v.active ? 1 : 0 }));
  }

  async activeVersion(): Promise<string | undefined> {
    return (await this.history(100)).find((row) => row.active === 1)?.version;
  }

  /** Versions (among the newest 100) that start with `prefix`, and the active one. */
  async findVersions(prefix: string): Promise<{ matches: string[]; active: string | undefined }> {
    const rows = await this.history(100);
    return {
      matches: rows
        .filter((row) => row.version.startsWith(prefix))
        .slice(0, 2)
        .map((row) => row.version),
      active: rows.find((row) => row.active === 1)?.version,
    };
  }

  async readVersion(version: string): Promise<string> {
    return this.text("GET", `/v1/admin/policies/versions/${encodeURIComponent(version)}`);
  }

  async seenIdentities(since: string): Promise<SeenIdentity[]> {
    const out: SeenIdentity[] = [];
    let after = "";
    for (;;) {
      const query = `since=${encodeURIComponent(since)}&limit=${SEEN_PAGE}${after ? `&after=${after}` : ""}`;
      const page = (await this.json("GET", `/v1/admin/seen-identities?${query}`)) as {
        identities: (Parameters<typeof seenIdentityOf>[0] & { claims: unknown })[];
        next: string | null;
      };
      for (const row of page.identities) out.push(seenIdentityOf({ ...row, claims: JSON.stringify(row.claims) }));
      if (!page.next) return out;
      after = page.next;
    }
  }

  async push(body: {
    snapshot: string;
    tests: unknown[];
    force: boolean;
    wait: number;
  }): Promise<{ version: string; replaced: string | null; pushed_by: string }> {
    return (await this.json("PUT", "/v1/admin/policies", body)) as {
      version: string;
      replaced: string | null;
      pushed_by: string;
    };
  }

  async rollback(body: {
    version: string;
    force: boolean;
    wait: number;
  }): Promise<{ version: string; replaced: string | null; pushed_by: string }> {
    return (await this.json("POST", "/v1/admin/policies/rollback", body)) as {
      version: string;
      replaced: string | null;
      pushed_by: string;
    };
  }

  private async json(method: string, path: string, body?: unknown): Promise<unknown> {
    return JSON.parse(await this.text(method, path, body));
  }

  private async text(method: string, path: string, body?: unknown): Promise<string> {
    const res = await this.fetchImpl(`${this.base}${path}`, {
      method,
      redirect: "error", // the token goes to --url and nowhere else
      headers: {
        Authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (res.ok) return text;
    let refusal: { code?: unknown; error_description?: unknown } = {};
    try {
      refusal = JSON.parse(text) as typeof refusal;
    } catch {
      // not gatepass's JSON refusal
    }
    throw new AdminApiError(
      res.status,
      typeof refusal.code === "string" ? refusal.code : "http_error",
      typeof refusal.error_description === "string" ? refusal.error_description : `HTTP ${res.status}`,
    );
  }
}
