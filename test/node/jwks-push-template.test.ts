// The scheduled key push job (templates/jwks-push.gitlab-ci.yml): its YAML as GitLab reads it, and its
// script run by dash, as a runner would, against a real gatepass (`wrangler dev`, local KV/D1) with
// credentials made by the CLI, a stand-in GitLab serving its keys, and a `curl` on PATH that records
// its arguments (the credential must never be among them). Retries are checked against a scripted
// stand-in for gatepass. `gatepass status` then reads the push back from the running Worker. The
// admin's side (policy push, credentials) runs in process (local storage through Miniflare,
// cli/local-storage.ts) before the Worker starts on the same state.
import { execFile, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { parse } from "yaml";
import { gatepassInProcess, type CliResult } from "../support/cli";
import { includeComponent, INTERPOLATION, readComponent } from "../support/component";
import { closeLocalStorage } from "../../cli/wrangler";
import { copyMigratedState, startWranglerDev, type WranglerDev } from "../support/wrangler-dev";
import { createTestKey, jwksOf, type TestKey } from "../support/tokens";

const ADMIN_TOKEN = "template-test-admin-token";
const TEMPLATE_TEXT = readFileSync(path.resolve("templates/jwks-push.gitlab-ci.yml"), "utf8");
type Job = Record<string, any>;
/** The template's jobs as GitLab adds them for these include inputs (values checked against the inputs' regexes). */
const include = (inputs: Record<string, string>) => includeComponent(inputs, TEMPLATE_TEXT) as Record<string, Job>;
/** The same with the values spliced in unchecked: what the script itself does with a value GitLab's regex would have stopped. */
function includeUnchecked(given: Record<string, string>): Record<string, Job> {
  const { inputs, body } = readComponent(TEMPLATE_TEXT);
  return parse(body.replace(INTERPOLATION, (_match, name: string) => given[name] ?? inputs[name]!.default!)) as Record<
    string,
    Job
  >;
}

const dir = mkdtempSync(path.join(tmpdir(), "gatepass-push-template-"));
const bin = path.join(dir, "bin");
const curlLog = path.join(dir, "curl-argv.log");
let gatepass: WranglerDev;
let gitlab: { server: Server; url: string; requests: number; answer: { status: number; body: string } };
let key: TestKey;
const credentials: Record<string, string> = {};

/** `gatepass ...` in process, as the admin who holds the admin token. */
function gatepassCli(...args: string[]): Promise<CliResult> {
  vi.stubEnv("GATEPASS_ADMIN_TOKEN", ADMIN_TOKEN);
  return gatepassInProcess(...args).finally(() => vi.unstubAllEnvs());
}

beforeAll(async () => {
  // A curl that writes down its arguments, then runs the real one.
  await mkdir(bin);
  const realCurl = (await promisify(execFile)("sh", ["-c", "command -v curl"])).stdout.trim();
  writeFileSync(path.join(bin, "curl"), `#!/bin/sh\nprintf '%s\\n' "$@" >> '${curlLog}'\nexec '${realCurl}' "$@"\n`);
  chmodSync(path.join(bin, "curl"), 0o755);

  key = await createTestKey();
  gitlab = {
    server: undefined as unknown as Server,
    url: "",
    requests: 0,
    answer: { status: 200, body: JSON.stringify(jwksOf(key)) },
  };
  gitlab.server = createServer((req, res) => {
    gitlab.requests++;
    if (req.url !== "/oauth/discovery/keys") return void res.writeHead(404).end();
    // Content-Length announced, as GitLab sends it: curl's --max-filesize refuses from that alone.
    res
      .writeHead(gitlab.answer.status, {
        "Content-Type": "application/json",
        "Content-Length": Buffer.byteLength(gitlab.answer.body),
      })
      .end(gitlab.answer.body);
  });
  await new Promise<void>((resolve) => gitlab.server.listen(0, "127.0.0.1", resolve));
  gitlab.url = `http://127.0.0.1:${(gitlab.server.address() as AddressInfo).port}`;

  // The admin's side: a policy with two pushed issuers, pushed by the CLI; then gatepass itself.
  const state = path.join(dir, "state");
  const policies = path.join(dir, "policies");
  await mkdir(policies);
  await writeFile(
    path.join(policies, "issuers.yaml"),
    [
      "issuers:",
      "  - name: corp-gitlab",
      "    url: https://gitlab.corp.example",
      "    audiences: [https://gatepass.example.com]",
      "    keys: { source: pushed }",
      "  - name: lab-gitlab",
      "    url: https://gitlab.lab.example",
      "    audiences: [https://gatepass.example.com]",
      "    keys: { source: pushed }",
      "",
    ].join("\n"),
  );
  await copyMigratedState(state);
  const pushed = await gatepassCli(
    "policies",
    "push",
    "--local",
    "--persist-to",
    state,
    "--dir",
    policies,
    "--by",
    "test",
  );
  expect(pushed.code, pushed.stderr).toBe(0);
  for (const [name, issuer] of [
    ["corp", "corp-gitlab"],
    ["lab", "lab-gitlab"],
    ["revoked", "corp-gitlab"],
  ] as const) {
    const created = await gatepassCli(
      "jwks",
      "credential",
      "create",
      "--issuer",
      issuer,
      "--local",
      "--persist-to",
      state,
      "--by",
      "test",
    );
    expect(created.code, created.stderr).toBe(0);
    credentials[name] = created.stdout.trim();
  }
  const revoked = await gatepassCli(
    "jwks",
    "credential",
    "revoke",
    credentials.revoked!.slice(0, 20),
    "--local",
    "--persist-to",
    state,
  );
  expect(revoked.code, revoked.stderr).toBe(0);
  await closeLocalStorage(); // the Worker opens the state from here on
  gatepass = await startWranglerDev({
    persistTo: state,
    vars: (url) => ({ GATEPASS_ISSUER: url, GATEPASS_ENV: "development" }),
    secrets: { GATEPASS_ADMIN_TOKEN: ADMIN_TOKEN },
  });
}, 240_000);

afterAll(async () => {
  await gatepass?.stop();
  gitlab?.server.closeAllConnections();
  await new Promise((resolve) => gitlab?.server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A job's script under dash, as the template gives it for these include inputs (gitlab_url: the
 * stand-in GitLab), with `env` as the variables GitLab sets (project, schedule or pipeline variables).
 */
function runJob(
  inputs: Record<string, string>,
  env: Record<string, string>,
  { job = "gatepass-jwks-push", unchecked = false }: { job?: string; unchecked?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  rmSync(curlLog, { force: true });
  const given = { gitlab_url: gitlab.url, ...inputs };
  const script = ((unchecked ? includeUnchecked(given) : include(given))[job]!.script as string[]).join("\n");
  return new Promise((resolve) => {
    const child = spawn("dash", ["-c", script], { env: { PATH: `${bin}:${process.env.PATH}`, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

const curlArgs = (): string => {
  try {
    return readFileSync(curlLog, "utf8");
  } catch {
    return "";
  }
};

describe("templates/jwks-push.gitlab-ci.yml as GitLab reads it", () => {
  const INPUTS = {
    gatepass_url: "https://gatepass.example.com",
    issuer: "corp-gitlab",
    gitlab_url: "https://gitlab.corp.example",
  };

  it("is a push job run by schedules and by hand, and a manual drop job in pipelines run by hand, one at a time, in an image with curl", () => {
    const jobs = include(INPUTS);
    expect(Object.keys(jobs)).toEqual([".gatepass-jwks-push", "gatepass-jwks-push", "gatepass-jwks-push-drop"]);
    expect(jobs["gatepass-jwks-push"]!.rules).toEqual([
      { if: '$CI_PIPELINE_SOURCE == "schedule" || $CI_PIPELINE_SOURCE == "web"' },
    ]);
    expect(jobs["gatepass-jwks-push-drop"]!.rules).toEqual([
      { if: '$CI_PIPELINE_SOURCE == "web"', when: "manual", allow_failure: true },
    ]);
    const base = jobs[".gatepass-jwks-push"]!;
    expect(base.resource_group).toBe("gatepass-jwks-push");
    expect(base.image).toEqual({ name: expect.stringMatching(/^curlimages\/curl:\d+\.\d+\.\d+$/), entrypoint: [""] });
    for (const name of ["gatepass-jwks-push", "gatepass-jwks-push-drop"]) {
      const job = jobs[name]!;
      expect(job.extends).toBe(".gatepass-jwks-push");
      // Nothing a pipeline variable could outrank: no variables at all, the inputs are words in the script.
      expect(job.variables, name).toBeUndefined();
      expect(job.script).toEqual([`gatepass_previous=${name.endsWith("-drop") ? "drop" : "keep"}`, base.script[0]]);
    }
    expect(base.variables).toBeUndefined();
    expect(base.script[0]).toContain(
      "gatepass_url='https://gatepass.example.com'\ngatepass_issuer='corp-gitlab'\ngatepass_keys_url='https://gitlab.corp.example'\n",
    );
    expect(base.script[0]).not.toMatch(/\bjq\b|\bbash\b|\[\[|CI_SERVER_URL/);
  });

  it.each([
    ["gatepass_url", "http://gatepass.example.com"],
    ["gatepass_url", "http://localhost:1@evil.example"],
    ["gatepass_url", "http://127.0.0.1.evil.example"],
    ["gatepass_url", "https://user@gatepass.example.com"],
    ["gatepass_url", "HTTPS://gatepass.example.com"],
    ["gatepass_url", "https://gatepass.example.com'; curl evil.example; '"],
    ["gatepass_url", " https://gatepass.example.com"],
    ["gitlab_url", "http://[::1]:8080"],
    ["gitlab_url", "https://gitlab.corp.example?x=@evil.example"],
    ["issuer", "corp-gitlab/../lab-gitlab"],
    ["issuer", "corp'gitlab"],
    ["image", "evil.example/curl:1 ; id"],
  ])("GitLab refuses the input %s = %j (its regex)", (input, value) => {
    expect(() => include({ ...INPUTS, [input]: value })).toThrow(new RegExp(`input ${input}`));
  });

  it("needs gatepass_url, issuer and gitlab_url: no default a variable could fill in", () => {
    for (const input of ["gatepass_url", "issuer", "gitlab_url"]) {
      const { [input as keyof typeof INPUTS]: _left, ...others } = INPUTS;
      expect(() => include(others)).toThrow(`input ${input} is required`);
    }
  });
});

describe("the job's script under dash against wrangler dev", () => {
  it("pushes GitLab's keys with the scoped credential, which never appears in curl's arguments; gatepass status shows the push", async () => {
    const corpId = credentials.corp!.slice(0, 20);
    const { code, stdout, stderr } = await runJob(
      { gatepass_url: gatepass.url, issuer: "corp-gitlab" },
      { GATEPASS_PUSH_CREDENTIAL: credentials.corp! },
    );
    expect(stderr).toBe("");
    expect(code).toBe(0);
    expect(stdout).toMatch(
      new RegExp(
        `^gatepass: pushed \\{"issuer":"corp-gitlab","kids":\\["${key.kid}"\\],"fetched_at":\\d+,"pushed_by":"${corpId}","retired":\\[\\]\\}\\n$`,
      ),
    );
    expect(curlArgs()).toContain(`${gatepass.url}/v1/admin/issuers/corp-gitlab/jwks?previous=keep`);
    expect(curlArgs()).not.toContain(credentials.corp!.slice(21));

    const status = await gatepassCli("status", "--url", gatepass.url);
    expect(status.stderr).toContain("warning: issuer lab-gitlab: no keys were ever pushed");
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(
      new RegExp(`\\n  corp-gitlab  pushed  last push \\d+s ago \\(\\S+Z\\) by ${corpId}  kids: ${key.kid}\\n`),
    );
    expect(status.stdout).toContain("\n  lab-gitlab  pushed  last push never  STALE  kids: none\n");
  });

  it("fails with gatepass's answer for a credential of another issuer, and for a revoked one", async () => {
    const wrongIssuer = await runJob(
      { gatepass_url: gatepass.url, issuer: "corp-gitlab" },
      { GATEPASS_PUSH_CREDENTIAL: credentials.lab! },
    );
    expect(wrongIssuer.code).toBe(1);
    expect(wrongIssuer.stderr).toMatch(
      /^gatepass: the push failed \(HTTP 403\): \{.*"code":"push_credential_wrong_issuer".*\}\n$/,
    );
    const revoked = await runJob(
      { gatepass_url: gatepass.url, issuer: "corp-gitlab" },
      { GATEPASS_PUSH_CREDENTIAL: credentials.revoked! },
    );
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toMatch(
      /^gatepass: the push failed \(HTTP 401\): \{.*"code":"push_credential_revoked".*\}\n$/,
    );
    for (const run of [wrongIssuer, revoked])
      expect(run.stderr + run.stdout).not.toContain("_".concat(credentials.lab!.slice(21)));
  });

  it.each([
    [
      "a value that is not a push credential",
      {},
      { GATEPASS_PUSH_CREDENTIAL: ADMIN_TOKEN },
      "is not a push credential",
    ],
    ["no credential", {}, { GATEPASS_PUSH_CREDENTIAL: "" }, "set the masked CI/CD variable GATEPASS_PUSH_CREDENTIAL"],
    // A variable of the old names (say a pipeline variable, which outranks job variables) is an attempt to redirect: refused.
    [
      "a GATEPASS_URL variable (the credential sent elsewhere)",
      {},
      { GATEPASS_URL: "https://evil.example" },
      "the variable GATEPASS_URL is set",
    ],
    [
      "a GITLAB_KEYS_URL variable (someone else's keys pushed)",
      {},
      { GITLAB_KEYS_URL: "https://evil.example/keys" },
      "the variable GITLAB_KEYS_URL is set",
    ],
    [
      "a GATEPASS_ISSUER_NAME variable",
      {},
      { GATEPASS_ISSUER_NAME: "lab-gitlab" },
      "the variable GATEPASS_ISSUER_NAME is set",
    ],
    [
      "a GATEPASS_PREVIOUS_KEYS variable, even empty",
      {},
      { GATEPASS_PREVIOUS_KEYS: "" },
      "the variable GATEPASS_PREVIOUS_KEYS is set",
    ],
    [
      "a GATEPASS_PUSH_IMAGE variable",
      {},
      { GATEPASS_PUSH_IMAGE: "evil.example/curl" },
      "the variable GATEPASS_PUSH_IMAGE is set",
    ],
  ])("refuses %s before any request", async (_name, inputs, env, message) => {
    const before = gitlab.requests;
    const { code, stderr } = await runJob(
      { gatepass_url: gatepass.url, issuer: "corp-gitlab", ...inputs },
      { GATEPASS_PUSH_CREDENTIAL: credentials.corp!, ...env },
    );
    expect(code).not.toBe(0);
    expect(stderr).toContain(message);
    expect(gitlab.requests).toBe(before);
    expect(curlArgs()).toBe("");
  });

  // Past GitLab's regex (a copy edited by hand, an older GitLab): the script parses the URL itself.
  it.each([
    ["http://gatepass.example.com", "is http:// off loopback"],
    ["http://localhost:1@evil.example", "has characters a plain https URL does not need"],
    ["http://127.0.0.1.evil.example", "is http:// off loopback"],
    ["http://localhost.evil.example:80", "is http:// off loopback"],
    ["http://[::1]:8787", "has characters a plain https URL does not need"],
    ["https://user@gatepass.example.com", "has characters a plain https URL does not need"],
    ["https://gatepass.example.com#@evil.example", "has characters a plain https URL does not need"],
    ["HTTPS://gatepass.example.com", "does not start with https:// (lower case)"],
    ["Http://127.0.0.1:8787", "does not start with https:// (lower case)"],
    ["https://gatepass.example.com /x", "has characters a plain https URL does not need"],
    ["https:// gatepass.example.com", "has characters a plain https URL does not need"],
    ["https://gatepass.example.com\t", "has characters a plain https URL does not need"],
    ["ftp://gatepass.example.com", "does not start with https://"],
    ["https://", "has no valid host name"],
    ["https://:443", "has no valid host name"],
    ["https://-evil.example", "has no valid host name"],
    ["https://gatepass.example.com:", "has no valid port"],
    ["https://gatepass.example.com:443:1", "has no valid port"],
    ["https://gatepass.example.com:123456", "has no valid port"],
  ])("the script refuses gatepass_url %j: %s", async (url, message) => {
    const { code, stderr } = await runJob(
      { gatepass_url: url, issuer: "corp-gitlab" },
      { GATEPASS_PUSH_CREDENTIAL: credentials.corp! },
      { unchecked: true },
    );
    expect(code).toBe(1);
    expect(stderr).toContain(`gatepass: the input gatepass_url ${message}`);
    expect(curlArgs()).toBe("");
  });

  it("the script refuses a gitlab_url it cannot parse as https, too", async () => {
    const { code, stderr } = await runJob(
      { gatepass_url: gatepass.url, issuer: "corp-gitlab", gitlab_url: "http://gitlab.corp.example" },
      { GATEPASS_PUSH_CREDENTIAL: credentials.corp! },
      { unchecked: true },
    );
    expect(code).toBe(1);
    expect(stderr).toContain("gatepass: the input gitlab_url is http:// off loopback");
    expect(curlArgs()).toBe("");
  });

  it.each([
    ["an HTTP error", { status: 500, body: "oops" }, "(curl exit 0, HTTP 500)"],
    [
      "more than 100 KiB",
      { status: 200, body: JSON.stringify({ keys: [], pad: "x".repeat(110 * 1024) }) },
      "(curl exit 63, HTTP 200)",
    ],
  ])("pushes nothing when GitLab's keys cannot be read: %s", async (_name, answer, detail) => {
    gitlab.answer = answer;
    try {
      const { code, stderr } = await runJob(
        { gatepass_url: gatepass.url, issuer: "corp-gitlab" },
        { GATEPASS_PUSH_CREDENTIAL: credentials.corp! },
      );
      expect(code).toBe(1);
      // (curl's own complaint, if any, comes first: --show-error)
      expect(stderr).toMatch(
        new RegExp(
          `(^|\\n)gatepass: reading the keys from ${gitlab.url}/oauth/discovery/keys failed ${detail.replace(/[()]/g, "\\$&")}; nothing was pushed\\n$`,
        ),
      );
      expect(curlArgs()).not.toContain("/v1/admin/");
    } finally {
      gitlab.answer = { status: 200, body: JSON.stringify(jwksOf(key)) };
    }
  });
});

describe("the job's retries, against a scripted gatepass", () => {
  async function scriptedGatepass(statuses: number[]) {
    const seen: { method: string; url: string; authorization: string; body: string }[] = [];
    const server = createServer((req: IncomingMessage, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString()));
      req.on("end", () => {
        seen.push({ method: req.method!, url: req.url!, authorization: req.headers.authorization ?? "", body });
        const status = statuses.shift() ?? 500;
        res
          .writeHead(status, { "Content-Type": "application/json" })
          .end(JSON.stringify(status === 200 ? { issuer: "corp-gitlab" } : { code: "internal_error" }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      seen,
      close: () => new Promise((resolve) => server.close(resolve)),
    };
  }

  it(
    "retries a 5xx with the same PUT; the drop job sends previous=drop, with no variable but the credential",
    { timeout: 30_000 },
    async () => {
      const fake = await scriptedGatepass([503, 200]);
      try {
        const { code, stdout, stderr } = await runJob(
          { gatepass_url: fake.url, issuer: "corp-gitlab" },
          { GATEPASS_PUSH_CREDENTIAL: credentials.corp! },
          { job: "gatepass-jwks-push-drop" },
        );
        expect(code).toBe(0);
        expect(stderr).toBe("gatepass: HTTP 503, retrying in 2 s (attempt 2 of 3)\n");
        expect(stdout).toBe('gatepass: pushed {"issuer":"corp-gitlab"}\n');
        expect(fake.seen).toHaveLength(2);
        for (const request of fake.seen) {
          expect(request).toEqual({
            method: "PUT",
            url: "/v1/admin/issuers/corp-gitlab/jwks?previous=drop",
            authorization: `Bearer ${credentials.corp}`,
            body: JSON.stringify(jwksOf(key)),
          });
        }
      } finally {
        await fake.close();
      }
    },
  );

  it("gives up after three attempts, and does not retry a 4xx", { timeout: 30_000 }, async () => {
    const failing = await scriptedGatepass([500, 502, 503, 200]);
    try {
      const { code, stderr } = await runJob(
        { gatepass_url: failing.url, issuer: "corp-gitlab" },
        { GATEPASS_PUSH_CREDENTIAL: credentials.corp! },
      );
      expect(code).toBe(1);
      expect(failing.seen).toHaveLength(3);
      expect(stderr).toContain('gatepass: the push failed (HTTP 503): {"code":"internal_error"}\n');
    } finally {
      await failing.close();
    }
    const refusing = await scriptedGatepass([409, 200]);
    try {
      expect(
        (
          await runJob(
            { gatepass_url: refusing.url, issuer: "corp-gitlab" },
            { GATEPASS_PUSH_CREDENTIAL: credentials.corp! },
          )
        ).code,
      ).toBe(1);
      expect(refusing.seen).toHaveLength(1);
    } finally {
      await refusing.close();
    }
  });
});
