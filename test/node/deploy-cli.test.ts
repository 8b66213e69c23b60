// `gatepass deploy`, in process with wrangler replaced by a recorder that plays a Cloudflare account
// (secrets, D1 databases, a Worker) and fetch by a fake deployed gatepass: the steps run in order, a
// second run changes nothing already in place, secret files are never overwritten, and a failure at
// any step says what was done and what to run next. (deploy.test.ts runs the real --dry-run once.)
import { chmod, chown, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { deploy, type DeployDeps } from "../../cli/commands/deploy";
import { checkPolicyDir } from "../../cli/policy/policy-files";
import { historyReadBack, type HistoryReadBack } from "../support/history-readback";
import { wrangler } from "../../cli/wrangler";
import { DEPLOY_CHECK_TIMEOUT_MS } from "../../src/limits";
import { parseSigningKeySecret } from "../../src/signing-keys/signing-key-secret";

vi.mock("../../cli/wrangler", async (importOriginal) => ({
  ...(await importOriginal<typeof import("../../cli/wrangler")>()),
  wrangler: vi.fn(),
}));
const recorder = vi.mocked(wrangler);

const ROOT = path.resolve(import.meta.dirname, "../..");
const POLICIES = path.join(ROOT, "policies");
const ISSUER = "https://gatepass.example.com";
const DB_UUID = "5c1e7d2a-0000-4000-8000-00000000d1d1";
const NOT_FOUND =
  'wrangler secret list failed (exit 1):\n✘ [ERROR] Worker "gatepass" not found.\n\nIf this is a new Worker, run `wrangler deploy` first to create it.';

let work: string;
/** What push's check reads back after writing the example policies' history (chunk rows, bytes). */
let history: HistoryReadBack;

beforeAll(async () => {
  work = await mkdtemp(path.join(tmpdir(), "gatepass-deploy-cli-"));
  const checked = await checkPolicyDir(POLICIES);
  if (!checked.ok) throw new Error("the example policies do not check");
  history = historyReadBack(checked.snapshot);
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A wrangler config in its own directory; paths absolute, so it reads like the repository's. */
async function writeConfig(vars: Record<string, string> = { GATEPASS_ISSUER: ISSUER }, extra = ""): Promise<string> {
  const dir = await mkdtemp(path.join(work, "config-"));
  const varLines = Object.entries(vars)
    .map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
    .join("\n");
  const file = path.join(dir, "wrangler.toml");
  await writeFile(
    file,
    `name = "gatepass"\nmain = ${JSON.stringify(path.join(ROOT, "src/index.ts"))}\ncompatibility_date = "2026-04-01"\n\n[vars]\n${varLines}\n\n` +
      `[[kv_namespaces]]\nbinding = "JWKS"\n\n[[kv_namespaces]]\nbinding = "POLICIES"\n\n` +
      `[[d1_databases]]\nbinding = "DB"\ndatabase_name = "gatepass"\nmigrations_dir = ${JSON.stringify(path.join(ROOT, "migrations"))}\n${extra}`,
  );
  return file;
}

const PRODUCTION_ENV = `
[env.production.vars]
GATEPASS_ISSUER = "https://gatepass.prod.example.com"

[[env.production.kv_namespaces]]
binding = "JWKS"

[[env.production.kv_namespaces]]
binding = "POLICIES"

[[env.production.d1_databases]]
binding = "DB"
database_name = "gatepass-production"
migrations_dir = ${JSON.stringify(path.join(ROOT, "migrations"))}
`;

/** The account wrangler talks to, and what each call saw. */
interface Account {
  workerExists: boolean;
  secrets: Set<string>;
  databases: Map<string, string>;
  /** Makes the call matching the predicate fail with this wrangler output. */
  failure?: { when: (args: string[]) => boolean; message: string };
}

interface Call {
  args: string[];
  input?: string;
  /** The --config file's content at the time of the call, when it is JSON (the copy carrying the D1 id). */
  derivedConfig?: Record<string, unknown>;
}

let account: Account;
let calls: Call[];
let stdout: string;
let stderr: string;
let fetched: string[];
let clock: number;

/**
 * policies push (docs/storage.md, "Write protocol"): the attempt logged and the lease taken; history
 * rows, read back; payload chunks; the active version and fallbacks read, the lease renewed;
 * `fallbacks`, `active`; the compare-and-swap; the chunk clean-up; the lease released.
 */
const POLICIES_PUSH = [
  "d1 execute",
  "d1 execute",
  "d1 execute",
  "kv bulk put",
  "d1 execute",
  "d1 execute",
  "kv key put",
  "kv key put",
  "d1 execute",
  "kv key list",
  "d1 execute",
];
const heads = () => calls.map(head);
const head = (call: Call) =>
  call.args.slice(0, call.args[0] === "deploy" ? 1 : call.args[0] === "kv" ? 3 : 2).join(" ");

function playAccount(): void {
  recorder.mockImplementation(async (args, options) => {
    const call: Call = { args: [...args], ...(options?.input !== undefined ? { input: options.input } : {}) };
    const configAt = args.indexOf("--config");
    if (configAt >= 0 && args[configAt + 1]!.endsWith(".json"))
      call.derivedConfig = JSON.parse(await readFile(args[configAt + 1]!, "utf8")) as Record<string, unknown>;
    calls.push(call);
    if (account.failure?.when(args)) throw new Error(account.failure.message);
    const [group, command] = args;
    if (group === "secret" && command === "list") {
      if (!account.workerExists) throw new Error(NOT_FOUND);
      return JSON.stringify(
        [...account.secrets].map((name) => ({ name, type: "secret_text" })),
        null,
        "  ",
      );
    }
    if (group === "secret" && command === "bulk") {
      for (const name of Object.keys(JSON.parse(options!.input!) as object)) account.secrets.add(name);
      account.workerExists = true;
      return "✨ Success! Uploaded secrets";
    }
    if (group === "d1" && command === "list")
      return JSON.stringify([
        { uuid: "00000000-0000-4000-8000-000000000000", name: "other" },
        ...[...account.databases].map(([name, uuid]) => ({ uuid, name })),
      ]);
    if (group === "d1" && command === "create") {
      account.databases.set(args[2]!, DB_UUID);
      return `✅ Successfully created DB '${args[2]}'`;
    }
    if (group === "d1" && command === "migrations") return "Migrations to be applied:\n│ 0001_init.sql │\n✅ Applied";
    if (group === "deploy") {
      account.workerExists = true;
      return "Uploaded gatepass (2.1 sec)\nDeployed gatepass triggers (0.9 sec)\n  https://gatepass.acct.workers.dev\n  schedule: */5 * * * *\nCurrent Version ID: 0f1e2d3c-0000-4000-8000-000000000001\n";
    }
    if (group === "d1" && command === "execute") {
      // The write lease is free, and stays this attempt's (its id is the first 24-hex-digit literal).
      const sql = args.join(" ");
      const attempt = /'([0-9a-f]{24})'/.exec(sql)?.[1];
      if (sql.includes("INTO policy_push_lease"))
        return JSON.stringify([{ results: [] }, { results: [] }, { results: [{ holder: attempt, held_by: "ops" }] }]);
      if (sql.includes("UPDATE policy_push_lease")) return JSON.stringify([{ results: [{ holder: attempt }] }]);
      if (sql.includes("RETURNING attempt"))
        return JSON.stringify([{ results: [] }, { results: [] }, { results: [{ attempt }] }, { results: [] }]);
      return args.includes("--json")
        ? JSON.stringify([{ results: sql.includes("count(c.seq)") ? [history] : [] }])
        : "🚣 executed";
    }
    if (group === "kv" && args[2] === "list") return "[]";
    if (group === "kv") return "Writing the value";
    throw new Error(`unexpected wrangler ${args.join(" ")}`);
  });
}

/** A deployed gatepass at `issuer`, answering as the Worker does; `answers` overrides per path. */
function fakeDeployed(issuer: string, answers: Record<string, () => Response> = {}): DeployDeps {
  const defaults: Record<string, () => Response> = {
    "/healthz": () => Response.json({ status: "ok" }),
    "/.well-known/openid-configuration": () => Response.json({ issuer, jwks_uri: `${issuer}/.well-known/jwks.json` }),
    "/.well-known/jwks.json": () => Response.json({ keys: [{ kty: "EC", kid: "k1" }] }),
  };
  return {
    fetch: async (input) => {
      const url = String(input);
      fetched.push(url);
      const answer = url.startsWith(issuer)
        ? (answers[url.slice(issuer.length)] ?? defaults[url.slice(issuer.length)])
        : undefined;
      return answer ? answer() : new Response("not here", { status: 404 });
    },
    sleep: async (ms) => void (clock += ms),
    now: () => clock,
  };
}

beforeEach(() => {
  account = { workerExists: false, secrets: new Set(), databases: new Map() };
  calls = [];
  stdout = "";
  stderr = "";
  fetched = [];
  clock = 0;
  playAccount();
  vi.spyOn(process.stdout, "write").mockImplementation((chunk) => ((stdout += String(chunk)), true));
  vi.spyOn(process.stderr, "write").mockImplementation((chunk) => ((stderr += String(chunk)), true));
});
afterEach(() => {
  vi.restoreAllMocks();
  recorder.mockReset();
});

const secretsDirIn = async () => path.join(await mkdtemp(path.join(work, "secrets-")), "kept");
const mode = async (file: string) => (await stat(file)).mode & 0o777;

describe("gatepass deploy, first run on a new account", () => {
  it("runs the steps in order: secrets generated into files first, then set; D1 created and migrated; deploy; policies; check", async () => {
    const config = await writeConfig();
    const secrets = await secretsDirIn();
    expect(
      await deploy(
        ["--config", config, "--secrets-dir", secrets, "--dir", POLICIES, "--by", "ops"],
        fakeDeployed(ISSUER),
      ),
    ).toBe(0);

    expect(heads()).toEqual([
      "secret list",
      "secret bulk",
      "d1 list",
      "d1 create",
      "d1 list",
      "d1 migrations",
      "deploy",
      ...POLICIES_PUSH,
    ]);
    // Secrets: generated into the operator's files (0600), and exactly those values set, on stdin.
    const signingFile = path.join(secrets, "gatepass.signing-keys.json");
    const tokenFile = path.join(secrets, "gatepass.admin-token");
    const bulk = calls.find((c) => head(c) === "secret bulk")!;
    expect(bulk.args).toEqual(["secret", "bulk", "--config", config]);
    const set = JSON.parse(bulk.input!) as Record<string, string>;
    expect(Object.keys(set).sort()).toEqual(["GATEPASS_ADMIN_TOKEN", "GATEPASS_SIGNING_KEYS"]);
    expect(await readFile(signingFile, "utf8")).toBe(`${set.GATEPASS_SIGNING_KEYS}\n`);
    expect(await readFile(tokenFile, "utf8")).toBe(`${set.GATEPASS_ADMIN_TOKEN}\n`);
    expect([await mode(signingFile), await mode(tokenFile)]).toEqual([0o600, 0o600]);
    expect(
      parseSigningKeySecret(set.GATEPASS_SIGNING_KEYS!)
        .keys.map((k) => `${k.alg} ${k.status}`)
        .sort(),
    ).toEqual(["ES256 current", "ES256 next", "RS256 current", "RS256 next"]);
    expect(set.GATEPASS_ADMIN_TOKEN).toMatch(/^[\w-]{43}$/);
    expect(calls.flatMap((c) => c.args).join(" ")).not.toContain(set.GATEPASS_ADMIN_TOKEN);

    // D1 by name (created, as deploy would bind it), migrated through a copy of the config carrying its id.
    expect(calls.find((c) => head(c) === "d1 create")!.args).toEqual(["d1", "create", "gatepass", "--config", config]);
    const migrate = calls.find((c) => head(c) === "d1 migrations")!;
    expect(migrate.args.slice(0, 5)).toEqual(["d1", "migrations", "apply", "DB", "--remote"]);
    expect(migrate.derivedConfig).toMatchObject({
      name: "gatepass",
      d1_databases: [
        {
          binding: "DB",
          database_name: "gatepass",
          database_id: DB_UUID,
          migrations_dir: path.join(ROOT, "migrations"),
        },
      ],
      kv_namespaces: [{ binding: "JWKS" }, { binding: "POLICIES" }],
    });
    expect(calls.find((c) => head(c) === "deploy")!.args).toEqual(["deploy", "--config", config]);
    // Policies go through the same copy (D1 history needs the id); KV is found on the deployed Worker.
    const put = calls.find((c) => head(c) === "kv key put" && c.args.includes("active"))!;
    expect(put.args).toEqual(expect.arrayContaining(["active", "--binding", "POLICIES", "--remote"]));
    expect(put.derivedConfig).toEqual(migrate.derivedConfig);
    const derivedPath = migrate.args[migrate.args.indexOf("--config") + 1]!;
    await expect(stat(derivedPath)).rejects.toMatchObject({ code: "ENOENT" }); // removed at the end

    expect(fetched).toEqual([
      `${ISSUER}/healthz`,
      `${ISSUER}/.well-known/openid-configuration`,
      `${ISSUER}/.well-known/jwks.json`,
    ]);
    const ticks = stdout.split("\n").filter((line) => line.startsWith("  ✓ "));
    expect(ticks.map((line) => line.slice(4, line.indexOf(":")))).toEqual([
      "1/8 configuration",
      "2/8 policies",
      "3/8 secrets",
      "4/8 secrets set",
      "5/8 D1 migrations",
      "6/8 deploy",
      "7/8 policies push",
      "8/8 check",
    ]);
    expect(stdout).toContain(`GATEPASS_SIGNING_KEYS generated into ${signingFile} (mode 0600)`);
    expect(stdout).toContain(`created D1 database gatepass (${DB_UUID}); applied 0001_init.sql`);
    expect(stdout).toContain("version 0f1e2d3c-0000-4000-8000-000000000001");
    expect(stdout).toMatch(new RegExp(`\\n {2}✓ 7/8 policies push: pushed ${POLICIES} as version [0-9a-f]{12}\\n`));
    expect(
      stdout
        .split("\n")
        .filter(Boolean)
        .filter((line) => !line.startsWith("  ✓ ")),
    ).toEqual(["gatepass deploy: done."]); // one line per step
    expect(stderr).toBe("");
  });

  it("with --env, acts on that environment's Worker, vars and database, and names the secret files after it", async () => {
    const config = await writeConfig(undefined, PRODUCTION_ENV);
    const secrets = await secretsDirIn();
    expect(
      await deploy(
        ["--env", "production", "--config", config, "--secrets-dir", secrets, "--dir", POLICIES, "--by", "ops"],
        fakeDeployed("https://gatepass.prod.example.com"),
      ),
    ).toBe(0);
    for (const command of ["secret list", "secret bulk", "deploy"])
      expect(calls.find((c) => head(c) === command)!.args).toEqual(expect.arrayContaining(["--env", "production"]));
    expect(calls.find((c) => head(c) === "d1 create")!.args[2]).toBe("gatepass-production");
    expect(calls.find((c) => head(c) === "d1 migrations")!.derivedConfig).toMatchObject({
      name: "gatepass-production",
      d1_databases: [{ database_name: "gatepass-production" }],
    });
    expect((await readdir(secrets)).sort()).toEqual([
      "gatepass-production.admin-token",
      "gatepass-production.signing-keys.json",
    ]);
    expect(fetched[0]).toBe("https://gatepass.prod.example.com/healthz");
  });

  it("uses a database_id the config gives, with the config itself", async () => {
    const config = await writeConfig();
    await writeFile(
      config,
      (await readFile(config, "utf8")).replace(
        'database_name = "gatepass"',
        `database_name = "gatepass"\ndatabase_id = "${DB_UUID}"`,
      ),
    );
    account = {
      workerExists: true,
      secrets: new Set(["GATEPASS_SIGNING_KEYS", "GATEPASS_ADMIN_TOKEN"]),
      databases: new Map(),
    };
    expect(await deploy(["--config", config, "--dir", POLICIES, "--by", "ops"], fakeDeployed(ISSUER))).toBe(0);
    expect(calls.map(head)).not.toContain("d1 list");
    expect(calls.find((c) => head(c) === "d1 migrations")!.args).toEqual([
      "d1",
      "migrations",
      "apply",
      "DB",
      "--remote",
      "--config",
      config,
    ]);
  });
});

describe("gatepass deploy, run again", () => {
  it("changes nothing already in place: live secrets are kept (not regenerated, not set), the database is found, files are left alone", async () => {
    const config = await writeConfig();
    const secrets = await secretsDirIn();
    await mkdir(secrets, { recursive: true });
    await writeFile(path.join(secrets, "gatepass.signing-keys.json"), "the operator's copy\n", { mode: 0o600 });
    account = {
      workerExists: true,
      secrets: new Set(["GATEPASS_SIGNING_KEYS", "GATEPASS_ADMIN_TOKEN"]),
      databases: new Map([["gatepass", DB_UUID]]),
    };
    expect(
      await deploy(
        ["--config", config, "--secrets-dir", secrets, "--dir", POLICIES, "--by", "ops"],
        fakeDeployed(ISSUER),
      ),
    ).toBe(0);
    expect(heads()).toEqual(["secret list", "d1 list", "d1 migrations", "deploy", ...POLICIES_PUSH]);
    expect(await readdir(secrets)).toEqual(["gatepass.signing-keys.json"]);
    expect(await readFile(path.join(secrets, "gatepass.signing-keys.json"), "utf8")).toBe("the operator's copy\n");
    expect(stdout).toContain("GATEPASS_SIGNING_KEYS already set (kept); GATEPASS_ADMIN_TOKEN already set (kept)");
    expect(stdout).toContain("4/8 secrets set: nothing to set");
    expect(stdout).toContain(`found D1 database gatepass (${DB_UUID})`);
  });

  it("sets what an earlier run saved but did not set, from its files, which stay as they were", async () => {
    const config = await writeConfig();
    const secrets = await secretsDirIn();
    expect(
      await deploy(
        ["--config", config, "--secrets-dir", secrets, "--dir", POLICIES, "--by", "ops"],
        fakeDeployed(ISSUER),
      ),
    ).toBe(0);
    // That run's secrets never reached Cloudflare (say the upload was lost): the next run finds them missing.
    const saved = {
      keys: await readFile(path.join(secrets, "gatepass.signing-keys.json"), "utf8"),
      token: await readFile(path.join(secrets, "gatepass.admin-token"), "utf8"),
    };
    account.secrets.clear();
    calls = [];
    expect(
      await deploy(
        ["--config", config, "--secrets-dir", secrets, "--dir", POLICIES, "--by", "ops"],
        fakeDeployed(ISSUER),
      ),
    ).toBe(0);
    const set = JSON.parse(calls.find((c) => head(c) === "secret bulk")!.input!) as Record<string, string>;
    expect(set).toEqual({ GATEPASS_SIGNING_KEYS: saved.keys.trim(), GATEPASS_ADMIN_TOKEN: saved.token.trim() });
    expect(await readFile(path.join(secrets, "gatepass.signing-keys.json"), "utf8")).toBe(saved.keys);
    expect(await readFile(path.join(secrets, "gatepass.admin-token"), "utf8")).toBe(saved.token);
    expect(stdout).toContain(
      `GATEPASS_ADMIN_TOKEN from ${path.join(secrets, "gatepass.admin-token")} (saved by an earlier run)`,
    );
  });

  it("generates and sets only the secret the Worker lacks", async () => {
    const config = await writeConfig();
    const tokenFile = path.join(await mkdtemp(path.join(work, "token-")), "admin-token");
    account = {
      workerExists: true,
      secrets: new Set(["GATEPASS_SIGNING_KEYS"]),
      databases: new Map([["gatepass", DB_UUID]]),
    };
    expect(
      await deploy(
        ["--config", config, "--admin-token-file", tokenFile, "--dir", POLICIES, "--by", "ops"],
        fakeDeployed(ISSUER),
      ),
    ).toBe(0);
    const set = JSON.parse(calls.find((c) => head(c) === "secret bulk")!.input!) as Record<string, string>;
    expect(Object.keys(set)).toEqual(["GATEPASS_ADMIN_TOKEN"]);
    expect(await readFile(tokenFile, "utf8")).toBe(`${set.GATEPASS_ADMIN_TOKEN}\n`);
  });

  it("refuses a file in the way that holds something else, and leaves it as it is", async () => {
    const config = await writeConfig();
    const secrets = await secretsDirIn();
    await mkdir(secrets, { recursive: true });
    await writeFile(path.join(secrets, "gatepass.admin-token"), "not a token\n", { mode: 0o600 });
    expect(await deploy(["--config", config, "--secrets-dir", secrets, "--dir", POLICIES], fakeDeployed(ISSUER))).toBe(
      1,
    );
    expect(await readFile(path.join(secrets, "gatepass.admin-token"), "utf8")).toBe("not a token\n");
    expect(calls.map(head)).toEqual(["secret list"]);
    expect(stderr).toContain(`${path.join(secrets, "gatepass.admin-token")} exists but does not hold an admin token`);
  });

  describe("uploads a file found there only if only the user could have written it", () => {
    const planted = "planted-admin-token-0123456789abcdefghijkl";
    /** A secrets dir holding a valid-looking admin token; the Worker lacks both secrets. */
    async function dirWithToken(): Promise<{ secrets: string; tokenFile: string }> {
      const secrets = await secretsDirIn();
      await mkdir(secrets, { recursive: true, mode: 0o700 });
      const tokenFile = path.join(secrets, "gatepass.admin-token");
      await writeFile(tokenFile, `${planted}\n`, { mode: 0o600 });
      return { secrets, tokenFile };
    }
    async function refused(secrets: string, reason: string): Promise<void> {
      const config = await writeConfig();
      expect(
        await deploy(["--config", config, "--secrets-dir", secrets, "--dir", POLICIES], fakeDeployed(ISSUER)),
      ).toBe(1);
      expect(calls.map(head)).toEqual(["secret list"]); // nothing uploaded
      expect(stdout).toContain("  ✗ 3/8 secrets");
      expect(stderr).toContain(reason);
      expect(stderr).toContain("nothing was uploaded");
    }

    it("refuses a directory others may write to (a planted admin token and a symlinked signing-key file in it)", async () => {
      const { secrets, tokenFile } = await dirWithToken();
      const elsewhere = path.join(await mkdtemp(path.join(work, "elsewhere-")), "keys.json");
      await writeFile(elsewhere, "{}\n", { mode: 0o600 });
      await symlink(elsewhere, path.join(secrets, "gatepass.signing-keys.json"));
      await chmod(secrets, 0o777);
      await refused(
        secrets,
        `${secrets} may be written by other users (mode 0777), who could have put a secret of their own there; run: chmod go-w ${secrets}`,
      );
      expect(await readFile(tokenFile, "utf8")).toBe(`${planted}\n`); // left as it was
    });

    it("refuses a symbolic link in place of a secret file", async () => {
      const { secrets } = await dirWithToken();
      const elsewhere = path.join(await mkdtemp(path.join(work, "elsewhere-")), "keys.json");
      await writeFile(elsewhere, "{}\n", { mode: 0o600 });
      const link = path.join(secrets, "gatepass.signing-keys.json");
      await symlink(elsewhere, link);
      await refused(
        secrets,
        `${link} is a symbolic link, not a file of your own; remove it so a new secret is generated: rm ${link}`,
      );
    });

    it("refuses a file whose mode is not 0600", async () => {
      const { secrets, tokenFile } = await dirWithToken();
      await chmod(tokenFile, 0o644);
      await refused(
        secrets,
        `${tokenFile} has mode 0644, not 0600 (readable or writable by others); if you made it, run: chmod 600 ${tokenFile}; if not, rm ${tokenFile}`,
      );
    });

    it("refuses a file another user owns", async () => {
      // Needs root to give a file away (the suite runs as root in CI and here); anyone else cannot plant such a file in their own 0700 dir either.
      expect(process.getuid!()).toBe(0);
      const { secrets, tokenFile } = await dirWithToken();
      await chown(tokenFile, 4242, 4242);
      await refused(
        secrets,
        `${tokenFile} belongs to another user (uid 4242), who could have chosen its secret; remove it so a new one is generated: rm ${tokenFile}`,
      );
    });

    it("refuses a directory another user owns (they could swap its files)", async () => {
      expect(process.getuid!()).toBe(0);
      const { secrets } = await dirWithToken();
      await chown(secrets, 4242, 4242);
      await refused(
        secrets,
        `${secrets} belongs to another user (uid 4242); keep secrets in a directory of your own: mkdir -m 700 DIR and give --secrets-dir DIR`,
      );
    });
  });

  it("needs a place for a new secret: without --secrets-dir it stops before setting anything", async () => {
    const config = await writeConfig();
    expect(await deploy(["--config", config, "--dir", POLICIES], fakeDeployed(ISSUER))).toBe(1);
    expect(calls.map(head)).toEqual(["secret list"]);
    expect(stderr).toContain("the Worker has no GATEPASS_SIGNING_KEYS, and a new one needs a file to be kept in");
    expect(stderr).toContain("add --secrets-dir DIR");
  });
});

describe("gatepass deploy refuses before anything remote", () => {
  it.each([
    [
      "an http:// GATEPASS_ISSUER",
      { GATEPASS_ISSUER: "http://gatepass.example.com" },
      'GATEPASS_ISSUER is "http://gatepass.example.com": set it to gatepass\'s public https:// URL',
    ],
    [
      "an issuer with a path",
      { GATEPASS_ISSUER: "https://example.com/gatepass" },
      "give gatepass's origin without a path",
    ],
    [
      "development mode in the config",
      { GATEPASS_ISSUER: ISSUER, GATEPASS_ENV: "development" },
      "a deployed Worker must run in production mode",
    ],
    [
      "an http:// upstream override",
      { GATEPASS_ISSUER: ISSUER, AWS_STS_URL: "http://127.0.0.1:5000/" },
      'AWS_STS_URL is "http://127.0.0.1:5000/"',
    ],
  ])("%s (step 1)", async (_name, vars, reason) => {
    const config = await writeConfig(vars);
    expect(
      await deploy(
        ["--config", config, "--secrets-dir", await secretsDirIn(), "--dir", POLICIES],
        fakeDeployed(ISSUER),
      ),
    ).toBe(1);
    expect(calls).toEqual([]);
    expect(stdout).toMatch(/^ {2}✗ 1\/8 configuration\n/);
    expect(stderr).toContain(reason);
    expect(stderr).toContain("Nothing was changed.");
    expect(stderr).toContain("Or this step by hand: set GATEPASS_ISSUER to your https:// origin under [vars]");
  });

  it("an --env the config does not define (it would deploy the top level under another name)", async () => {
    const config = await writeConfig();
    expect(await deploy(["--env", "staging", "--config", config, "--dir", POLICIES], fakeDeployed(ISSUER))).toBe(1);
    expect(calls).toEqual([]);
    expect(stderr).toContain("has no [env.staging] section");
  });

  it("failing policy tests (step 2), naming the failing case", async () => {
    const dir = path.join(await mkdtemp(path.join(work, "policies-")), "policies");
    await cp(POLICIES, dir, { recursive: true });
    const tests = path.join(dir, "rules.test.yaml");
    const text = await readFile(tests, "utf8");
    const broken = text.replace("aws-readonly: deny", "aws-readonly: allow");
    expect(broken).not.toBe(text);
    await writeFile(tests, broken);
    const config = await writeConfig();
    expect(
      await deploy(["--config", config, "--secrets-dir", await secretsDirIn(), "--dir", dir], fakeDeployed(ISSUER)),
    ).toBe(1);
    expect(calls).toEqual([]);
    expect(stdout).toContain("✓ 1/8 configuration");
    expect(stdout).toContain("✗ 2/8 policies");
    expect(stderr).toMatch(/1 of \d+ policy tests fail: rules\.test\.yaml:\d+ /);
    expect(stderr).toContain(`Or this step by hand: npx gatepass policies test --dir ${dir}`);
  });
});

describe("gatepass deploy stops at a failing step and says what is done and what to run next", () => {
  const failAt = (command: string) => (args: string[]) => args.join(" ").startsWith(command);
  it.each([
    [3, "secrets", failAt("secret list"), "npx gatepass keys generate --out FILE"],
    [4, "secrets set", failAt("secret bulk"), "npx wrangler secret put GATEPASS_SIGNING_KEYS < FILE"],
    [5, "D1 migrations", failAt("d1 migrations apply"), "npx wrangler d1 migrations apply DB --remote"],
    [6, "deploy", failAt("deploy"), "npx wrangler deploy"],
    [7, "policies push", failAt("kv key put"), "npx gatepass policies push --remote --dir"],
  ])("step %i (%s)", async (index, title, when, byHand) => {
    const config = await writeConfig();
    const secrets = await secretsDirIn();
    account.failure = {
      when,
      message:
        "wrangler failed (exit 1):\n✘ [ERROR] A request to the Cloudflare API failed: Authentication error [code: 10000]",
    };
    const args = ["--config", config, "--secrets-dir", secrets, "--dir", POLICIES, "--by", "ops"];
    expect(await deploy(args, fakeDeployed(ISSUER))).toBe(1);

    // Nothing ran after the failing call but, for a push, its D1 bookkeeping: the attempt recorded failed, the lease released.
    const failed = calls.findIndex((call) => when(call.args));
    expect(calls.slice(failed + 1).map(head)).toEqual(index === 7 ? ["d1 execute", "d1 execute"] : []);
    const lines = stdout.split("\n").filter((line) => /^ {2}[✓✗·] /.test(line));
    expect(lines.map((line) => line.slice(2, 3))).toEqual([
      ...Array<string>(index - 1).fill("✓"),
      "✗",
      ...Array<string>(8 - index).fill("·"),
    ]);
    expect(lines[index - 1]).toBe(`  ✗ ${index}/8 ${title}`);
    expect(stderr).toContain(
      `gatepass deploy: step ${index} (${title}) failed:\n  wrangler failed (exit 1):\n  ✘ [ERROR] A request to the Cloudflare API failed: Authentication error`,
    );
    expect(stderr).toContain(
      "Done before it, and still in place: configuration (worker gatepass, GATEPASS_ISSUER https://gatepass.example.com); policies (",
    );
    expect(stderr).toContain(
      `Next: fix the cause, then run the same command again (each step finds what is already done):\n  npx gatepass deploy ${args.join(" ")}\n`,
    );
    expect(stderr).toContain(`Or this step by hand: ${byHand}`);
    expect(fetched).toEqual([]);
  });

  it("step 8 (check): GATEPASS_ISSUER does not reach the Worker — retried for a while, then the deployed URL is named", async () => {
    const config = await writeConfig();
    const deps = fakeDeployed("https://gatepass.acct.workers.dev"); // the Worker answers there, not at GATEPASS_ISSUER
    expect(
      await deploy(["--config", config, "--secrets-dir", await secretsDirIn(), "--dir", POLICIES, "--by", "ops"], deps),
    ).toBe(1);
    expect(stdout).toContain("  ✓ 7/8 policies push: ");
    expect(stdout).toContain("  ✗ 8/8 check\n");
    expect(fetched.length).toBeGreaterThan(10);
    expect(fetched.every((url) => url === `${ISSUER}/healthz`)).toBe(true);
    expect(clock).toBeLessThanOrEqual(DEPLOY_CHECK_TIMEOUT_MS);
    expect(stderr).toContain(`GET ${ISSUER}/healthz answered 404 (still so after ${DEPLOY_CHECK_TIMEOUT_MS / 1000} s)`);
    expect(stderr).toContain(
      "wrangler deployed the Worker at https://gatepass.acct.workers.dev: route GATEPASS_ISSUER's host to it",
    );
    expect(stderr).toContain(
      `Or this step by hand: curl -fsS ${ISSUER}/healthz && curl -fsS ${ISSUER}/.well-known/openid-configuration`,
    );
  });

  it("step 8 (check): discovery must name GATEPASS_ISSUER, and its jwks_uri is fetched only on that origin", async () => {
    const config = await writeConfig();
    const args = ["--config", config, "--secrets-dir", await secretsDirIn(), "--dir", POLICIES, "--by", "ops"];
    const wrongIssuer = fakeDeployed(ISSUER, {
      "/.well-known/openid-configuration": () =>
        Response.json({ issuer: "http://127.0.0.1:8787", jwks_uri: `${ISSUER}/.well-known/jwks.json` }),
    });
    expect(await deploy(args, wrongIssuer)).toBe(1);
    expect(stderr).toContain(
      `${ISSUER}/.well-known/openid-configuration names issuer "http://127.0.0.1:8787", not GATEPASS_ISSUER ${ISSUER}`,
    );

    stderr = "";
    fetched = [];
    const elsewhere = fakeDeployed(ISSUER, {
      "/.well-known/openid-configuration": () =>
        Response.json({ issuer: ISSUER, jwks_uri: "https://keys.example.net/jwks.json" }),
    });
    expect(await deploy(args, elsewhere)).toBe(1);
    expect(stderr).toContain(
      'discovery\'s jwks_uri "https://keys.example.net/jwks.json" is not on https://gatepass.example.com',
    );
    expect(fetched.some((url) => url.startsWith("https://keys.example.net"))).toBe(false);
  });

  it("settles: a check that fails at first and then passes ends the deploy well", async () => {
    const config = await writeConfig();
    let attempts = 0;
    const deps = fakeDeployed(ISSUER, {
      "/healthz": () => (++attempts < 3 ? new Response("", { status: 522 }) : Response.json({ status: "ok" })),
    });
    expect(
      await deploy(["--config", config, "--secrets-dir", await secretsDirIn(), "--dir", POLICIES, "--by", "ops"], deps),
    ).toBe(0);
    expect(attempts).toBe(3);
    expect(stdout).toContain("  ✓ 8/8 check: ");
  });
});
