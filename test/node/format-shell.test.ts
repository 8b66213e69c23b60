// format=env is meant for `eval "$(curl ...)"`: prove with a real POSIX shell that hostile values
// come out byte for byte and never execute, and that the GitLab template's snippet around that curl
// retries, evaluates and prints only what it should.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { formatEnv } from "../../src/format/shell-quoting";
import { includeComponent } from "../support/component";

const dir = mkdtempSync(path.join(tmpdir(), "gatepass-shell-"));
const canary = path.join(dir, "pwned");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const HOSTILE = [
  `'; touch ${canary}; '`,
  `$(touch ${canary})`,
  `\`touch ${canary}\``,
  `"; touch ${canary}; "`,
  `\\'$(touch ${canary})\\'`,
  `'\\''`,
  `line1\nline2\n; touch ${canary}`,
  `$HOME \${PATH} !! * ? [a] ~ # & | ; < > ( )`,
  `ünïcødé ✓ \t tab`,
  `''''`,
  `\\`,
  ``,
];

describe("format=env through a real sh", () => {
  it.each(HOSTILE.map((v) => [JSON.stringify(v), v]))("round-trips %s without executing it", (_label, value) => {
    const script = formatEnv([
      ["GATEPASS_TEST_VALUE", value],
      ["SECOND", "after"],
    ]);
    const out = execFileSync("sh", ["-c", 'eval "$1"; printf "%s|%s" "$GATEPASS_TEST_VALUE" "$SECOND"', "sh", script], {
      encoding: "utf8",
    });
    expect(out).toBe(`${value}|after`);
    expect(existsSync(canary)).toBe(false);
  });
});

// The GitLab template's before_script against a scripted stand-in for gatepass: what it retries, what
// it evaluates and what it prints. A retried POST after a counted use turns a transient failure into
// use_limit_exceeded (max_uses_per_job: 1), and a cut-off 200 may hold part of a credential.
type Answer = { status: number; body: string; cut?: boolean } | { drop: true };

async function fakeGatepass(
  answers: Answer[],
): Promise<{ url: string; requests: () => number; close: () => Promise<void> }> {
  let requests = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      requests++;
      const answer = answers.shift() ?? { status: 500, body: '{"code":"internal_error"}' };
      if ("drop" in answer) return void req.socket.destroy();
      if (answer.cut) {
        // Announces more than it sends, then closes: curl sees a truncated 200.
        res.writeHead(answer.status, {
          "Content-Type": "text/plain",
          "Content-Length": String(answer.body.length + 100),
        });
        res.write(answer.body);
        setTimeout(() => res.socket?.destroy(), 20);
        return;
      }
      res
        .writeHead(answer.status, { "Content-Type": answer.body.startsWith("{") ? "application/json" : "text/plain" })
        .end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    close: () => new Promise((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

// The component included with url and its other defaults (format env); the job's variables come from the environment below.
function runSnippet(url: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const beforeScript = includeComponent({ url })[".gatepass"]!.before_script!.join("\n");
  return new Promise((resolve) => {
    const child = spawn(
      "sh",
      [
        "-e",
        "-c",
        `${beforeScript}\nprintf 'ID=%s\\nISSUED=%s\\nAWS=%s\\n' "$GATEPASS_ID_TOKEN" "\${GATEPASS_ISSUED_ID_TOKEN:-}" "\${AWS_SECRET_ACCESS_KEY:-}"`,
      ],
      {
        env: { PATH: process.env.PATH, GATEPASS_URL: url, GATEPASS_ID_TOKEN: "job-token", GATEPASS_TARGET: "t" },
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

const error = (code: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ error: "x", error_description: "d", code, request_id: "r", ...extra });
const AWS_ENV = "export AWS_ACCESS_KEY_ID='ASIAX'\nexport AWS_SECRET_ACCESS_KEY='s3cr3t'\n";

describe("the GitLab template's snippet through a real sh", () => {
  it("evaluates a complete answer; an issued ID token leaves the job's own GATEPASS_ID_TOKEN alone", async () => {
    const fake = await fakeGatepass([{ status: 200, body: "export GATEPASS_ISSUED_ID_TOKEN='issued'\n" }]);
    try {
      const { code, stdout, stderr } = await runSnippet(fake.url);
      expect(stderr).toBe("");
      expect(code).toBe(0);
      expect(stdout).toBe("ID=job-token\nISSUED=issued\nAWS=\n");
    } finally {
      await fake.close();
    }
  });

  it.each([
    ["502 upstream_unavailable", 502, error("upstream_unavailable", { upstream_error: "http_502" })],
    ["504 upstream_timeout", 504, error("upstream_timeout")],
    ["429 use_limit_exceeded", 429, error("use_limit_exceeded")],
    ["503 use_limit_unavailable", 503, error("use_limit_unavailable")],
    ["503 signing_unavailable", 503, error("signing_unavailable")],
    ["500 from something else", 500, "<html>oops</html>"],
  ])("does not retry %s (a use may be counted) and prints the error body", async (_name, status, body) => {
    const fake = await fakeGatepass([
      { status, body },
      { status: 200, body: AWS_ENV },
    ]);
    try {
      const { code, stdout, stderr } = await runSnippet(fake.url);
      expect(code).not.toBe(0);
      expect(fake.requests()).toBe(1);
      expect(stderr).toBe(`gatepass: HTTP ${status}: ${body}\n`);
      expect(stdout).toBe("");
    } finally {
      await fake.close();
    }
  });

  it.each([
    ["429 rate_limited", 429, error("rate_limited", { retry_after: 1 })],
    ["503 jwks_unavailable", 503, error("jwks_unavailable", { retry_after: 0 })],
    ["503 policy_unavailable", 503, error("policy_unavailable", { retry_after: 0 })],
  ])("retries %s (refused before any use is counted), waiting retry_after", async (_name, status, body) => {
    const fake = await fakeGatepass([
      { status, body },
      { status: 200, body: AWS_ENV },
    ]);
    try {
      const { code, stdout, stderr } = await runSnippet(fake.url);
      expect(code).toBe(0);
      expect(fake.requests()).toBe(2);
      expect(stderr).toMatch(new RegExp(`^gatepass: HTTP ${status}, retrying in [01] s \\(attempt 2 of 3\\)\\n$`));
      expect(stdout).toContain("AWS=s3cr3t\n");
    } finally {
      await fake.close();
    }
  });

  it("gives up after three attempts and shows the last error", async () => {
    const limited = error("rate_limited", { retry_after: 0 });
    const fake = await fakeGatepass([
      { status: 429, body: limited },
      { status: 429, body: limited },
      { status: 429, body: limited },
      { status: 200, body: AWS_ENV },
    ]);
    try {
      const { code, stderr } = await runSnippet(fake.url);
      expect(code).not.toBe(0);
      expect(fake.requests()).toBe(3);
      expect(stderr).toContain(`gatepass: HTTP 429: ${limited}\n`);
    } finally {
      await fake.close();
    }
  });

  it("retries when no HTTP answer arrived at all", { timeout: 20_000 }, async () => {
    const fake = await fakeGatepass([{ drop: true }, { status: 200, body: AWS_ENV }]);
    try {
      const { code, stdout, stderr } = await runSnippet(fake.url);
      expect(code).toBe(0);
      expect(fake.requests()).toBe(2);
      expect(stderr).toContain("gatepass: HTTP 000, retrying in 2 s (attempt 2 of 3)");
      expect(stdout).toContain("AWS=s3cr3t\n");
    } finally {
      await fake.close();
    }
  });

  it.each([
    [
      "a cut-off 200",
      { status: 200, body: "export AWS_ACCESS_KEY_ID='ASIAX'\nexport AWS_SECRET_ACCESS_KEY='PARTIALSECRET", cut: true },
    ],
    ["a 200 that is not env output", { status: 200, body: "<html>PARTIALSECRET</html>" }],
    ["a redirect", { status: 302, body: "PARTIALSECRET" }],
  ])("neither evaluates nor prints %s, and does not retry it", async (_name, answer) => {
    const fake = await fakeGatepass([answer, { status: 200, body: AWS_ENV }]);
    try {
      const { code, stdout, stderr } = await runSnippet(fake.url);
      expect(code).not.toBe(0);
      expect(fake.requests()).toBe(1);
      expect(stderr + stdout).not.toContain("PARTIALSECRET");
      expect(stderr).toMatch(/gatepass: no usable answer \(curl exit \d+, HTTP \d{3}\); what arrived is not shown/);
      expect(stdout).toBe("");
    } finally {
      await fake.close();
    }
  });
});

// docs/credentials.md's curl commands, as documented, pointed at the stand-in: a refusal reaches the
// job log (curl -sf would throw it away), a cut-off credential does not.
describe("docs/credentials.md's curl commands through a real sh", () => {
  const docs = readFileSync(path.resolve("docs/credentials.md"), "utf8");
  const ORIGIN = "https://gatepass.example.com";

  function runDocumented(
    command: string,
    url: string,
    cwd = dir,
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(
        "sh",
        ["-e", "-c", `${command.replaceAll(ORIGIN, url)}\nprintf 'AWS=%s\\n' "\${AWS_SECRET_ACCESS_KEY:-}"`],
        {
          cwd,
          env: { PATH: process.env.PATH, GATEPASS_ID_TOKEN: "job-token", CI_PROJECT_DIR: cwd },
        },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
      child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
      child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
  }

  it("shows no command with curl -sf, which throws gatepass's refusal away", () => {
    const code = [...docs.matchAll(/^```\w*\n([\s\S]*?)^```/gm)].map((m) => m[1]).join("");
    expect(code).toContain("curl -sS --fail-with-body");
    expect(code).not.toMatch(/curl -sf\b/);
  });

  describe("format=env", () => {
    const line = docs.split("\n").find((l) => l.includes("-d format=env") && l.includes("curl"));
    if (!line) throw new Error("docs/credentials.md has no format=env curl line");

    it("evaluates a complete answer", async () => {
      const fake = await fakeGatepass([{ status: 200, body: AWS_ENV }]);
      try {
        expect(await runDocumented(line, fake.url)).toEqual({ code: 0, stdout: "AWS=s3cr3t\n", stderr: "" });
      } finally {
        await fake.close();
      }
    });

    it("puts gatepass's refusal on stderr and fails", async () => {
      const body = error("policy_denied");
      const fake = await fakeGatepass([{ status: 403, body }]);
      try {
        const { code, stdout, stderr } = await runDocumented(line, fake.url);
        expect({ code, stdout }).toEqual({ code: 1, stdout: "" });
        expect(stderr).toBe(`curl: (22) The requested URL returned error: 403\ngatepass: ${body}\n`);
      } finally {
        await fake.close();
      }
    });

    it("neither evaluates nor shows a cut-off answer", async () => {
      const fake = await fakeGatepass([
        {
          status: 200,
          body: "export AWS_ACCESS_KEY_ID='ASIAX'\nexport AWS_SECRET_ACCESS_KEY='PARTIALSECRET",
          cut: true,
        },
      ]);
      try {
        const { code, stdout, stderr } = await runDocumented(line, fake.url);
        expect(code).toBe(1);
        expect(stdout + stderr).not.toContain("PARTIALSECRET");
      } finally {
        await fake.close();
      }
    });
  });

  it("format=gcloud: puts gatepass's refusal on stderr and fails", async () => {
    const block = /## Terraform, Google client libraries and gcloud\n\n```sh\n([\s\S]*?)```/.exec(docs)?.[1];
    if (!block?.includes("format=gcloud")) throw new Error("docs/credentials.md has no format=gcloud block");
    const project = mkdtempSync(path.join(dir, "project-"));
    const body = error("target_unknown");
    const fake = await fakeGatepass([{ status: 404, body }]);
    try {
      const { code, stderr } = await runDocumented(block.split("\nexport ")[0]!, fake.url, project);
      expect(code).toBe(1);
      expect(stderr).toBe(`curl: (22) The requested URL returned error: 404\ngatepass: ${body}\n`);
    } finally {
      await fake.close();
    }
  });
});
