// `gatepass jwks push` and `jwks credential` as an operator runs them, against local state in a temp
// --persist-to dir, read back with `wrangler kv key get` and parsed with the Worker's own reader. In
// process, with wrangler's local commands answered in process by cli/local-storage.ts, which
// test/node/local-wrangler.test.ts holds to wrangler's own behaviour.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { IssuerConfig } from "../../src/types";
import { jwksStorageKey, parseStoredKeySet, type StoredKeySet } from "../../src/issuer-keys/stored-key-set";
import { closeLocalStorage, runWrangler } from "../../cli/wrangler";
import { gatepassInProcess as gatepass } from "../support/cli";
import { createTestKey, jwksOf, type TestKey } from "../support/tokens";

const CONFIG = path.resolve("wrangler.toml");
const PRIVATE_URL = "http://127.0.0.1:8788";

let dir: string;
let state: string;
let policies: string;
let key: TestKey;
let server: Server;
let serverUrl: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "gatepass-jwks-"));
  state = path.join(dir, "state");
  policies = path.join(dir, "policies");
  await mkdir(policies);
  await writeFile(
    path.join(policies, "issuers.yaml"),
    [
      "issuers:",
      "  - name: private-gitlab",
      `    url: ${PRIVATE_URL}/`,
      "    audiences: [http://127.0.0.1:8787]",
      "    keys: { source: pushed }",
      "  - name: public-gitlab",
      "    url: https://gitlab.example.com",
      "    audiences: [https://gatepass.example.com]",
      "",
    ].join("\n"),
  );
  key = await createTestKey();
  server = createServer((req, res) => {
    if (req.url === "/moved") res.writeHead(302, { Location: "/oauth/discovery/keys" }).end();
    else res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify(jwksOf(key)));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/oauth/discovery/keys`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await closeLocalStorage();
  await rm(dir, { recursive: true, force: true });
});

const push = (...args: string[]) =>
  gatepass("jwks", "push", "--dir", policies, "--local", "--persist-to", state, "--config", CONFIG, ...args);

async function storedText(): Promise<string | undefined> {
  const result = await runWrangler([
    "kv",
    "key",
    "get",
    jwksStorageKey("private-gitlab"),
    "--binding",
    "JWKS",
    "--local",
    "--persist-to",
    state,
    "--config",
    CONFIG,
    "--text",
  ]);
  return result.code === 0 ? result.stdout.trim() : undefined;
}

const privateIssuer: IssuerConfig = {
  name: "private-gitlab",
  url: PRIVATE_URL,
  kind: "gitlab",
  aliases: [],
  audiences: ["http://127.0.0.1:8787"],
  algorithms: ["RS256"],
  keys: { source: "pushed" },
  max_token_age_seconds: 3600,
  accept_legacy_ci_job_jwt: false,
};

describe("gatepass jwks push", () => {
  it("stores a valid key set from a file, in the record the Worker reads", async () => {
    const file = path.join(dir, "jwks.json");
    await writeFile(file, JSON.stringify(jwksOf(key)));
    const result = await push("--issuer", "private-gitlab", "--file", file);
    expect(result.stderr).not.toMatch(/error/i);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(key.kid);
    const set = parseStoredKeySet((await storedText())!, privateIssuer);
    expect(set).toMatchObject({ issuer_url: PRIVATE_URL, source: "pushed", keys: [{ kid: key.kid, kty: "RSA" }] });
  });

  it("refuses an invalid key set and leaves the stored one in place", async () => {
    const before = await storedText();
    expect(before).toBeDefined();
    const privateJwk = await crypto.subtle.exportKey("jwk", key.privateKey);
    const file = path.join(dir, "leaked.json");
    await writeFile(file, JSON.stringify({ keys: [{ ...privateJwk, kid: "leaked" }] }));
    const result = await push("--issuer", "private-gitlab", "--file", file);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('private member "d"');
    expect(await storedText()).toBe(before);
  });

  it("fetches with --url from the operator's network", async () => {
    const result = await push("--issuer", "private-gitlab", "--url", serverUrl);
    expect(result.code).toBe(0);
    expect(parseStoredKeySet((await storedText())!, privateIssuer)?.keys.map((k) => k.kid)).toEqual([key.kid]);
  });

  it("does not follow a redirect from --url, and leaves the stored keys in place", async () => {
    const before = await storedText();
    const result = await push("--issuer", "private-gitlab", "--url", new URL("/moved", serverUrl).href);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("redirects are not followed for keys");
    expect(await storedText()).toBe(before);
  });

  it("refuses issuers that are unknown or not configured for pushed keys, and bad usage", async () => {
    const file = path.join(dir, "jwks.json");
    const notPushed = await push("--issuer", "public-gitlab", "--file", file);
    expect(notPushed.code).toBe(1);
    expect(notPushed.stderr).toContain("gets its keys by discovery");
    const unknown = await push("--issuer", "nobody", "--file", file);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("no issuer 'nobody'");
    expect((await push("--issuer", "private-gitlab", "--file", file, "--url", serverUrl)).code).toBe(2);
    expect((await push("--file", file)).code).toBe(2);
  });
  it("refuses keys for an issuer whose URL differs from the live policy's (the Worker would drop its keys), and stores them once they agree", async () => {
    const pushPolicies = (dirName: string) =>
      gatepass(
        "policies",
        "push",
        "--dir",
        dirName,
        "--local",
        "--persist-to",
        state,
        "--config",
        CONFIG,
        "--by",
        "test",
      );
    expect(
      (await runWrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", state, "--config", CONFIG]))
        .code,
    ).toBe(0);
    expect((await pushPolicies(policies)).code).toBe(0);
    const before = await storedText();
    const edited = path.join(dir, "edited-policies");
    await mkdir(edited, { recursive: true });
    await writeFile(
      path.join(edited, "issuers.yaml"),
      (await readFile(path.join(policies, "issuers.yaml"), "utf8")).replace(
        `${PRIVATE_URL}/`,
        "http://127.0.0.1:8799/gitlab",
      ),
    );
    const file = path.join(dir, "live-check.json");
    await writeFile(file, JSON.stringify(jwksOf(key)));

    const refused = await gatepass(
      "jwks",
      "push",
      "--dir",
      edited,
      "--local",
      "--persist-to",
      state,
      "--config",
      CONFIG,
      "--issuer",
      "private-gitlab",
      "--file",
      file,
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /the live policy \([0-9a-f]{12}\) has issuer 'private-gitlab' at http:\/\/127\.0\.0\.1:8788, the local one at http:\/\/127\.0\.0\.1:8799\/gitlab/,
    );
    expect(await storedText()).toBe(before);

    expect((await pushPolicies(edited)).code).toBe(0);
    const stored = await gatepass(
      "jwks",
      "push",
      "--dir",
      edited,
      "--local",
      "--persist-to",
      state,
      "--config",
      CONFIG,
      "--issuer",
      "private-gitlab",
      "--file",
      file,
    );
    expect(stored.code).toBe(0);
    expect(JSON.parse((await storedText())!)).toMatchObject({ issuer_url: "http://127.0.0.1:8799/gitlab" });
  });
});

// Runs after the tests above, which leave a live policy with issuers private-gitlab (pushed) and
// public-gitlab (discovery) in the local state.
describe("gatepass jwks credential", () => {
  /** The live URL of private-gitlab, as the tests above left it: each credential is bound to it. */
  const LIVE_URL = "http://127.0.0.1:8799/gitlab";
  const credential = (...args: string[]) =>
    gatepass("jwks", "credential", ...args, "--local", "--persist-to", state, "--config", CONFIG);
  const rows = async () =>
    (
      JSON.parse(
        (
          await runWrangler([
            "d1",
            "execute",
            "DB",
            "--json",
            "--command",
            "SELECT * FROM push_credentials ORDER BY created_at, id",
            "--local",
            "--persist-to",
            state,
            "--config",
            CONFIG,
          ])
        ).stdout,
      ) as [{ results: Record<string, unknown>[] }]
    )[0].results;
  let id: string;

  it("create prints the credential alone on stdout and stores only its hash, who made it and an expiry (90 days by default)", async () => {
    const before = Math.floor(Date.now() / 1000);
    const made = await credential("create", "--issuer", "private-gitlab", "--by", "alice@example.com");
    expect(made.code).toBe(0);
    expect(made.stdout).toMatch(/^gpk_[0-9a-f]{16}_[0-9a-f]{64}\n$/);
    const value = made.stdout.trim();
    id = value.slice(0, 20);
    expect(made.stderr).toContain(
      `created push credential ${id} for issuer private-gitlab at ${LIVE_URL} (local), expires `,
    );
    expect(made.stderr).not.toContain(value.slice(21));
    const hash = Buffer.from(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value))).toString("hex");
    const [row] = await rows();
    expect(row).toEqual({
      id,
      issuer: "private-gitlab",
      issuer_url: LIVE_URL,
      secret_sha256: hash,
      created_by: "alice@example.com",
      created_at: expect.any(Number),
      expires_at: expect.any(Number),
      revoked_at: null,
      revoked_by: null,
      last_used_at: null,
    });
    expect(row!.created_at).toBeGreaterThanOrEqual(before);
    expect(row!.expires_at).toBe((row!.created_at as number) + 90 * 86400);
    expect(JSON.stringify(await rows())).not.toContain(value.slice(21));
  });

  it("create refuses an issuer the live policy lacks or does not push keys for, and expiries outside 1h to 365d", async () => {
    const unknown = await credential("create", "--issuer", "nobody");
    expect(unknown).toMatchObject({ code: 1, stdout: "" });
    expect(unknown.stderr).toContain(
      "the live policy has no issuer 'nobody' (it has: private-gitlab, public-gitlab). No credential was created.",
    );
    const fetched = await credential("create", "--issuer", "public-gitlab");
    expect(fetched).toMatchObject({ code: 1, stdout: "" });
    expect(fetched.stderr).toContain("issuer 'public-gitlab' gets its keys by discovery");
    for (const expires of ["366d", "59m", "forever", "0d"]) {
      const refused = await gatepass(
        "jwks",
        "credential",
        "create",
        "--issuer",
        "private-gitlab",
        "--expires",
        expires,
      );
      expect(refused.code, expires).toBe(2);
      expect(refused.stderr).toContain("--expires takes a duration from 1h to 365d");
    }
    expect(await rows()).toHaveLength(1);
  });

  it("list shows each credential's state; revoke refuses it from now on and keeps the first revocation", async () => {
    const short = await credential("create", "--issuer", "private-gitlab", "--expires", "2h", "--by", "bob");
    expect(short.code).toBe(0);
    const revoked = await credential("revoke", id, "--by", "carol");
    expect(revoked).toMatchObject({ code: 0, stdout: `revoked ${id} (issuer private-gitlab): refused from now on\n` });
    const again = await credential("revoke", id, "--by", "dave");
    expect(again.stdout).toMatch(new RegExp(`^${id} \\(issuer private-gitlab\\) was already revoked at \\S+Z\\n$`));
    // Both may be created in the same second: find them by id, not by order.
    const stored = await rows();
    const first = stored.find((row) => row.id === id);
    const second = stored.find((row) => row.id === short.stdout.slice(0, 20));
    expect(first).toMatchObject({ revoked_by: "carol", revoked_at: expect.any(Number) });
    expect(second).toMatchObject({ created_by: "bob", expires_at: (second!.created_at as number) + 7200 });

    const listed = await credential("list", "--json");
    const entries = listed.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(entries).toHaveLength(2);
    expect(entries).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          id,
          issuer_url: LIVE_URL,
          state: "revoked",
          revoked_by: "carol",
          created_by: "alice@example.com",
        }),
        expect.objectContaining({ id: short.stdout.slice(0, 20), state: "active", last_used_at: null }),
      ]),
    );
    const table = await credential("list", "--issuer", "private-gitlab");
    expect(table.stdout.split("\n")[0]).toMatch(/^ID +ISSUER +STATE +CREATED +BY +EXPIRES +LAST USED$/);
    expect(table.stdout).toMatch(
      new RegExp(`\\n${id}  private-gitlab  revoked  \\S+Z  alice@example.com  \\S+Z  never\\n`),
    );

    const unknown = await credential("revoke", "gpk_0000000000000000");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("no push credential gpk_0000000000000000 (local)");
    // A whole credential given by mistake is refused without being echoed.
    const whole = await gatepass("jwks", "credential", "revoke", short.stdout.trim());
    expect(whole.code).toBe(2);
    expect(whole.stderr).not.toContain(short.stdout.trim().slice(21));
  });
});

describe("gatepass jwks push over an earlier push", () => {
  it("retires the keys it removes for the issuer's max token age, records who pushed, and --drop-previous drops them", async () => {
    const edited = path.join(dir, "edited-policies");
    const file = (name: string, ...keys: TestKey[]) =>
      writeFile(path.join(dir, name), JSON.stringify(jwksOf(...keys))).then(() => path.join(dir, name));
    const next = await createTestKey();
    const rotated = await gatepass(
      "jwks",
      "push",
      "--dir",
      edited,
      "--local",
      "--persist-to",
      state,
      "--config",
      CONFIG,
      "--issuer",
      "private-gitlab",
      "--file",
      await file("next.json", next),
      "--by",
      "erin",
    );
    expect(rotated.code).toBe(0);
    expect(rotated.stdout).toMatch(new RegExp(`\\nretired ${key.kid}: verifies until \\S+Z\\n$`));
    const record = JSON.parse((await storedText())!) as StoredKeySet;
    expect(record).toMatchObject({
      pushed_by: "wrangler:erin",
      keys: [{ kid: next.kid }],
      retired: [{ key: { kid: key.kid } }],
    });
    expect(record.retired![0]!.until).toBe(record.fetched_at + 3600 + 60);

    const dropped = await gatepass(
      "jwks",
      "push",
      "--dir",
      edited,
      "--local",
      "--persist-to",
      state,
      "--config",
      CONFIG,
      "--issuer",
      "private-gitlab",
      "--file",
      await file("next.json", next),
      "--drop-previous",
    );
    expect(dropped.code).toBe(0);
    expect(dropped.stdout).not.toContain("retired");
    expect(JSON.parse((await storedText())!)).not.toHaveProperty("retired");
  });
});
