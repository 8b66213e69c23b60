// templates/gatepass.yml as a GitLab CI/CD component: its spec header defines every input it uses and
// uses every input it defines, the inputs reach the job as variables except url (where the ID token goes,
// fixed in the script at include time), and its before_script, run by
// dash against a scripted stand-in for gatepass, asks for and installs both formats (env, gcloud).
// (format-shell.test.ts: retries and error printing; e2e.test.ts and clients.test.ts: a real gatepass.)
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GatepassError, toWireError, type ErrorCode } from "../../src/errors";
import { COMPONENT_FILE, includeComponent, INTERPOLATION, readComponent } from "../support/component";

const URL_INPUT = "https://gatepass.example.com";
const PROVIDERS = ["gcp", "aws", "azure", "vault", "oidc"];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "gatepass-component-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the component's spec", () => {
  it("defines every input it uses and uses every input it defines", async () => {
    const { inputs, body } = readComponent();
    const used = new Set([...body.matchAll(INTERPOLATION)].map((match) => match[1]));
    expect([...used].sort()).toEqual(Object.keys(inputs).sort());
    // Nothing outside the header refers to inputs in another spelling GitLab would leave as text.
    expect(body.replace(INTERPOLATION, "")).not.toContain("$[[");
    const text = await readFile(COMPONENT_FILE, "utf8");
    expect(text.slice(0, text.indexOf("\n---\n"))).not.toMatch(INTERPOLATION);
  });

  it("describes every input; only url is required, and each default passes its own options and regex", () => {
    const { inputs } = readComponent();
    expect(Object.keys(inputs)).toEqual(["url", "target", "format", "lifetime", "scope", "name"]);
    for (const [name, spec] of Object.entries(inputs)) {
      expect(spec.description, name).toMatch(/\w/);
      if (spec.default === undefined) continue;
      if (spec.options) expect(spec.options, name).toContain(spec.default);
      if (spec.regex) expect(new RegExp(spec.regex).test(spec.default), name).toBe(true);
    }
    expect(
      Object.entries(inputs)
        .filter(([, spec]) => spec.default === undefined)
        .map(([name]) => name),
    ).toEqual(["url"]);
    expect(inputs.format!.options).toEqual(["env", "gcloud"]);
  });

  it("hands the inputs to the job as variables, except url, which the script holds as one single-quoted word", () => {
    // No input is spliced into shell text (no injection), with one exception: url decides where the job's
    // ID token goes, and a variable can be outranked by a pipeline variable, so the script takes url from
    // the input itself (the interpolation happens at include time, out of any pipeline's reach).
    const jobs = includeComponent({
      url: URL_INPUT,
      target: "aws-readonly",
      format: "gcloud",
      lifetime: "15m",
      scope: "a b",
      name: "gp-prod",
    });
    expect(Object.keys(jobs)).toEqual([".gp-prod", ...PROVIDERS.map((p) => `.gp-prod-${p}`)]);
    for (const provider of PROVIDERS) expect(jobs[`.gp-prod-${provider}`]!.extends).toBe(".gp-prod");
    const job = jobs[".gp-prod"]!;
    expect(job.id_tokens).toEqual({ GATEPASS_ID_TOKEN: { aud: URL_INPUT } });
    expect(job.variables).toEqual({
      GATEPASS_URL: URL_INPUT,
      GATEPASS_TARGET: "aws-readonly",
      GATEPASS_FORMAT: "gcloud",
      GATEPASS_LIFETIME: "15m",
      GATEPASS_SCOPE: "a b",
    });
    const script = job.before_script!.join("\n");
    expect(script.split(URL_INPUT)).toHaveLength(2);
    expect(script.split("\n")).toContain(`gatepass_url='${URL_INPUT}'`);
    // Apart from that word, the script is the same for every include.
    const other = includeComponent({ url: "http://127.0.0.1:8787" })[".gatepass"]!.before_script!.join("\n");
    expect(script.replace(`'${URL_INPUT}'`, "'URL'")).toBe(other.replace("'http://127.0.0.1:8787'", "'URL'"));
  });

  it("url's regex admits nothing that could end the single-quoted word or the YAML string", () => {
    const { inputs } = readComponent();
    const regex = new RegExp(inputs.url!.regex!);
    for (const c of [
      "'",
      '"',
      "\\",
      "$",
      "`",
      ";",
      "&",
      "|",
      "<",
      ">",
      "(",
      ")",
      "{",
      "}",
      "*",
      "?",
      "[",
      "]",
      "!",
      "#",
      "~",
      " ",
      "\t",
      "\n",
      "\r",
      "@",
      "%",
      "/",
    ]) {
      expect(regex.test(`https://gatepass${c}example.com`), JSON.stringify(c)).toBe(false);
      expect(regex.test(`https://gatepass.example.com:443${c}`), JSON.stringify(c)).toBe(false);
    }
  });

  it.each([
    ["url", "https://gatepass.example.com/", "a trailing slash (the audience must match exactly)"],
    ["url", "https://gatepass.example.com/path", "a path"],
    ["url", 'https://x"; touch /tmp/p; "', "shell or YAML syntax"],
    [
      "url",
      "http://gatepass.example.com",
      "http:// off loopback (the job's ID token would cross the network in clear text)",
    ],
    ["url", "http://localhost:1@evil.example", "userinfo before another host"],
    ["url", "http://127.0.0.1.evil.example", "a host that only starts like loopback"],
    ["url", "http://[::1]:8787", "a bracketed host"],
    ["url", "HTTPS://gatepass.example.com", "an upper-case scheme"],
    ["url", "https://user@gatepass.example.com", "userinfo"],
    ["url", " https://gatepass.example.com", "whitespace"],
    ["target", "AWS", "a name no target can have"],
    ["format", "json", "a format the template cannot install"],
    ["lifetime", "2d", "a lifetime gatepass would refuse"],
    ["scope", "$(id)", "shell syntax"],
    ["name", ".gatepass", "a name that would not make a hidden job"],
  ])("refuses %s %j: %s", (input, value) => {
    expect(() => includeComponent({ url: URL_INPUT, [input]: value })).toThrow(new RegExp(`input ${input}`));
  });

  it("needs url", () => {
    expect(() => includeComponent({})).toThrow("input url is required");
  });
});

// ---- the before_script under dash ----------------------------------------------------------------

interface Stand {
  url: string;
  bodies: URLSearchParams[];
  close(): Promise<void>;
}

/** A stand-in gatepass answering each request with `answer(body)`. */
async function standIn(answer: (body: URLSearchParams) => { status: number; body: string }): Promise<Stand> {
  const bodies: URLSearchParams[] = [];
  const server = createServer((req, res) => {
    let text = "";
    req.setEncoding("utf8").on("data", (d: string) => (text += d));
    req.on("end", () => {
      const body = new URLSearchParams(text);
      bodies.push(body);
      const { status, body: out } = answer(body);
      res.writeHead(status, { "Content-Type": out.startsWith("{") ? "application/json" : "text/plain" }).end(out);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: () => new Promise((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

/** The included job's before_script, then `after`, under dash with the job's variables (and overrides) as GitLab sets them. */
function runJob(
  inputs: Record<string, string>,
  env: Record<string, string>,
  after: string,
  cwd = dir,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const job = includeComponent(inputs)[`.${inputs.name ?? "gatepass"}`]!;
  return runScript(job.before_script!, { ...job.variables, GATEPASS_ID_TOKEN: "job.id.token", ...env }, after, cwd);
}

/** `lines`, then `after`, under dash with exactly `env` (and PATH, or `env.PATH` when given). */
function runScript(
  lines: string[],
  env: Record<string, string>,
  after: string,
  cwd = dir,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("dash", ["-e", "-c", [...lines, after].join("\n")], {
      cwd,
      env: { PATH: process.env.PATH, ...env },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

const GCLOUD_CONFIG = (tokenFile: string) =>
  JSON.stringify({
    type: "external_account",
    audience: "gcp-deployer",
    credential_source: { file: tokenFile, format: { type: "text" } },
  });

describe("the component's before_script under dash", () => {
  it("format env: asks with the inputs' defaults and evaluates the answer", async () => {
    const stand = await standIn(() => ({ status: 200, body: "export AWS_ACCESS_KEY_ID='ASIAX'\n" }));
    try {
      const inputs = { url: stand.url, target: "aws-readonly", lifetime: "15m", scope: "s1 s2" };
      const { code, stdout, stderr } = await runJob(inputs, {}, `printf '%s' "$AWS_ACCESS_KEY_ID"`);
      expect(stderr).toBe("");
      expect(code).toBe(0);
      expect(stdout).toBe("ASIAX");
      expect(Object.fromEntries(stand.bodies[0]!)).toEqual({ format: "env", lifetime: "15m", scope: "s1 s2" });
    } finally {
      await stand.close();
    }
  });

  it("format gcloud: writes the job's token and gatepass's config under $CI_PROJECT_DIR/.gatepass (0600) and points Google's tools at it by absolute path", async () => {
    const project = await mkdtemp(path.join(dir, "project-"));
    const stand = await standIn((body) => ({ status: 200, body: GCLOUD_CONFIG(body.get("token_file")!) }));
    try {
      // The job runs from another directory (as a tool that changes directory would): the paths still hold.
      const { code, stdout, stderr } = await runJob(
        { url: stand.url, format: "gcloud" },
        { CI_PROJECT_DIR: project, GATEPASS_TARGET: "gcp-deployer" },
        `printf '%s\\n%s\\n' "$GOOGLE_APPLICATION_CREDENTIALS" "$CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE"`,
        tmpdir(),
      );
      expect(stderr).toBe("");
      expect(code).toBe(0);
      const tokenFile = path.join(project, ".gatepass/ci-token");
      const configFile = path.join(project, ".gatepass/gcp-deployer.json");
      expect(Object.fromEntries(stand.bodies[0]!)).toEqual({ format: "gcloud", token_file: tokenFile });
      expect(stdout).toBe(`${configFile}\n${configFile}\n`);
      expect(await readFile(tokenFile, "utf8")).toBe("job.id.token");
      expect(JSON.parse(await readFile(configFile, "utf8"))).toMatchObject({
        type: "external_account",
        credential_source: { file: tokenFile },
      });
      expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
      expect((await stat(configFile)).mode & 0o777).toBe(0o600);
    } finally {
      await stand.close();
    }
  });

  it("format gcloud refuses a CI_PROJECT_DIR that is not absolute, before asking gatepass", async () => {
    const stand = await standIn(() => ({ status: 500, body: "{}" }));
    try {
      const { code, stderr } = await runJob(
        { url: stand.url, format: "gcloud" },
        { CI_PROJECT_DIR: "builds/p", GATEPASS_TARGET: "gcp-deployer" },
        "true",
      );
      expect(code).not.toBe(0);
      expect(stderr).toBe('gatepass: format gcloud needs CI_PROJECT_DIR to be an absolute path (it is "builds/p")\n');
      expect(stand.bodies).toEqual([]);
    } finally {
      await stand.close();
    }
  });

  it("format gcloud installs nothing from an answer that is not a config, and does not print it", async () => {
    const project = await mkdtemp(path.join(dir, "project-"));
    const stand = await standIn(() => ({ status: 200, body: "export GOOGLE_OAUTH_ACCESS_TOKEN='ya29.secret'\n" }));
    try {
      const { code, stdout, stderr } = await runJob(
        { url: stand.url, format: "gcloud" },
        { CI_PROJECT_DIR: project, GATEPASS_TARGET: "gcp-deployer" },
        `printf '%s' "\${GOOGLE_APPLICATION_CREDENTIALS:-}"`,
      );
      expect(code).not.toBe(0);
      expect(stdout).toBe("");
      expect(stderr).toMatch(/^gatepass: no usable answer \(curl exit 0, HTTP 200\)/);
      expect(stderr).not.toContain("ya29");
    } finally {
      await stand.close();
    }
  });

  it.each([
    ["https://evil.example", "another https origin (the parsed-URL check alone would let it through)"],
    ["http://127.0.0.1:1", "another loopback port"],
    ["STAND/", "the input with a trailing slash"],
    ["", "an empty value"],
  ])(
    "refuses a GATEPASS_URL variable %j that differs from the input (a pipeline variable outranks the job's), before sending the ID token: %s",
    async (value) => {
      const stand = await standIn(() => ({ status: 200, body: "export AWS_ACCESS_KEY_ID='ASIAX'\n" }));
      try {
        const url = value.replace("STAND", stand.url);
        const { code, stderr } = await runJob(
          { url: stand.url, target: "aws-readonly" },
          { GATEPASS_URL: url },
          "true",
        );
        expect(code).not.toBe(0);
        expect(stderr).toBe(
          `gatepass: the variable GATEPASS_URL ("${url}") differs from the include input url ("${stand.url}"), and this job sends its ID token only to the input, so a pipeline or project variable cannot redirect it: delete that variable, or change url in the include\n`,
        );
        expect(stand.bodies).toEqual([]);
      } finally {
        await stand.close();
      }
    },
  );

  it("sends the ID token to the input when no GATEPASS_URL variable is set at all", async () => {
    const stand = await standIn(() => ({ status: 200, body: "export AWS_ACCESS_KEY_ID='ASIAX'\n" }));
    try {
      const job = includeComponent({ url: stand.url, target: "aws-readonly" })[".gatepass"]!;
      const { GATEPASS_URL: _dropped, ...variables } = job.variables!;
      const { code, stdout, stderr } = await runScript(
        job.before_script!,
        { ...variables, GATEPASS_ID_TOKEN: "job.id.token" },
        `printf '%s' "$AWS_ACCESS_KEY_ID"`,
      );
      expect({ code, stdout, stderr }).toEqual({ code: 0, stdout: "ASIAX", stderr: "" });
      expect(stand.bodies).toHaveLength(1);
    } finally {
      await stand.close();
    }
  });

  // Past GitLab's regex (a copy edited by hand, an older GitLab): the script parses the input's URL itself.
  it.each([
    ["http://gatepass.example.com", "is http:// off loopback"],
    ["http://localhost:1@evil.example", "has characters a plain https URL does not need"],
    ["http://127.0.0.1.evil.example", "is http:// off loopback"],
    ["http://[::1]:8787", "has characters a plain https URL does not need"],
    ["https://user@gatepass.example.com", "has characters a plain https URL does not need"],
    ["HTTPS://gatepass.example.com", "does not start with https:// (lower case)"],
    ["https://gatepass.example.com /", "has characters a plain https URL does not need"],
    ["", "does not start with https:// (lower case)"],
  ])("refuses an input url %j that got past the regex, before sending the ID token: %s", async (url, message) => {
    const text = readFileSync(COMPONENT_FILE, "utf8");
    const withoutRegex = text.replace(/^ {6}regex: \^\(https:.*$/m, "");
    expect(withoutRegex).not.toBe(text);
    const job = includeComponent({ url, target: "aws-readonly" }, withoutRegex)[".gatepass"]!;
    const { code, stderr } = await runScript(
      job.before_script!,
      { ...job.variables, GATEPASS_ID_TOKEN: "job.id.token" },
      "true",
    );
    expect(code).not.toBe(0);
    expect(stderr.startsWith(`gatepass: the include input url ("${url}") ${message}`), stderr).toBe(true);
    expect(stderr).toMatch(/; the ID token of this job would be sent there\n$/);
  });

  it("leaves no helper behind in the job's shell", async () => {
    const stand = await standIn(() => ({ status: 200, body: "export AWS_ACCESS_KEY_ID='ASIAX'\n" }));
    try {
      const { code, stdout } = await runJob(
        { url: stand.url, target: "aws-readonly" },
        {},
        `command -v gatepass_url_problem || true; printf '[%s%s%s%s]' "\${gatepass_problem:-}" "\${gatepass_u_host:-}" "\${gatepass_u_rest:-}" "\${gatepass_url:-}\${gatepass_unverified_retried:-}"`,
      );
      expect(code).toBe(0);
      expect(stdout).toBe("[]");
    } finally {
      await stand.close();
    }
  });

  it("a job's own GATEPASS_FORMAT must be env or gcloud", async () => {
    const { code, stderr } = await runJob(
      { url: URL_INPUT },
      { GATEPASS_FORMAT: "json", GATEPASS_TARGET: "t" },
      "true",
    );
    expect(code).not.toBe(0);
    expect(stderr).toBe('gatepass: GATEPASS_FORMAT is "json"; use env or gcloud\n');
  });
});

// After a GitLab signing-key rotation, the first request with the new kid that a Worker isolate sees is
// refused at once with 401 token_unverified while that isolate refetches its keys (docs/verification.md,
// "After a key rotation"). The component retries that answer once, 5 s later, and nothing else by that rule.
describe("the component's one retry of 401 token_unverified, under dash", () => {
  const refusal = (code: ErrorCode, extra: Record<string, number> = {}) =>
    JSON.stringify({ ...toWireError(new GatepassError(code), "req-1"), ...extra });
  const AWS = { status: 200, body: "export AWS_ACCESS_KEY_ID='ASIAX'\n" };

  /**
   * The job run with a `sleep` on PATH that records what it was asked to wait and returns at once: the
   * 5 s stays fixed in the script (no variable a pipeline could lower), and the test stays fast.
   */
  async function runWithAnswers(
    answers: Array<{ status: number; body: string }>,
  ): Promise<{ code: number; stdout: string; stderr: string; requests: number; waits: string[] }> {
    const bin = await mkdtemp(path.join(dir, "bin-"));
    const log = path.join(bin, "waits");
    await writeFile(log, "");
    await writeFile(path.join(bin, "sleep"), `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\n`);
    await chmod(path.join(bin, "sleep"), 0o755);
    const stand = await standIn(() => answers.shift() ?? { status: 500, body: refusal("internal_error") });
    try {
      const run = await runJob(
        { url: stand.url, target: "aws-readonly" },
        { PATH: `${bin}:${process.env.PATH}` },
        `printf '%s' "\${AWS_ACCESS_KEY_ID:-}"`,
      );
      return {
        ...run,
        requests: stand.bodies.length,
        waits: (await readFile(log, "utf8")).split("\n").filter(Boolean),
      };
    } finally {
      await stand.close();
    }
  }

  it("retries a 401 token_unverified once, after 5 s, and installs the answer", async () => {
    const run = await runWithAnswers([{ status: 401, body: refusal("token_unverified") }, AWS]);
    expect(run).toEqual({
      code: 0,
      stdout: "ASIAX",
      stderr: "gatepass: HTTP 401, retrying in 5 s (attempt 2 of 3)\n",
      requests: 2,
      waits: ["5"],
    });
  });

  it("retries token_unverified only once: a second one fails the job with gatepass's answer", async () => {
    const body = refusal("token_unverified");
    const run = await runWithAnswers([{ status: 401, body }, { status: 401, body }, AWS]);
    expect(run).toEqual({
      code: 1,
      stdout: "",
      stderr: `gatepass: HTTP 401, retrying in 5 s (attempt 2 of 3)\ngatepass: HTTP 401: ${body}\n`,
      requests: 2,
      waits: ["5"],
    });
  });

  it("keeps one budget of 3 attempts with the other retries: token_unverified, then rate_limited, then the answer", async () => {
    const run = await runWithAnswers([
      { status: 401, body: refusal("token_unverified") },
      { status: 429, body: refusal("rate_limited", { retry_after: 2 }) },
      AWS,
    ]);
    expect(run).toMatchObject({ code: 0, stdout: "ASIAX", requests: 3, waits: ["5", "2"] });
  });

  it.each([
    [403, "policy_denied"],
    [401, "token_expired"],
    [401, "token_missing"],
    [401, "audience_mismatch"],
  ] as Array<[number, ErrorCode]>)("does not retry %s %s", async (status, code) => {
    const body = refusal(code);
    const run = await runWithAnswers([{ status, body }, AWS]);
    expect(run).toEqual({ code: 1, stdout: "", stderr: `gatepass: HTTP ${status}: ${body}\n`, requests: 1, waits: [] });
  });
});
