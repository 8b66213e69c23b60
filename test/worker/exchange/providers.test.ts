import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { readConfig, type Env } from "../../../src/config";
import { GatepassError } from "../../../src/errors";
import { MAX_UPSTREAM_EXPIRY_SECONDS } from "../../../src/limits";
import { mintToken } from "../../../src/mint/minted-token";
import { sessionName, stsUrl } from "../../../src/providers/aws";
import { exchange } from "../../../src/providers/provider-dispatch";
import { resolveExchange } from "../../../src/providers/request-checks";
import { xmlText } from "../../../src/providers/sts-xml";
import type { Deps } from "../../../src/deps";
import type { Target } from "../../../src/types";
import type { Scenario } from "../../support/standins/upstreams";
import {
  awsTarget,
  azureTarget,
  capturedRequests,
  configFor,
  deps,
  failure,
  FAST_RETRY,
  gcpTarget,
  identity,
  ISSUER,
  newNamespace,
  oidcTarget,
  publishedJwks,
  SA,
  setScenario,
  testKeyRing,
  VAULT_ALGS,
  vaultTarget,
  WIP,
} from "./fixtures";
import type { ExchangeRequest } from "../../../src/providers/provider-credential";

const now = () => Math.floor(Date.now() / 1000);

async function run(
  ns: string,
  target: Target,
  request: ExchangeRequest = {},
  scenario?: Omit<Scenario, "trust">,
  overrides: Partial<Deps> = {},
) {
  await setScenario(ns, { trust: { issuer: ISSUER, jwks: await publishedJwks() }, ...scenario });
  const resolved = resolveExchange(target, request);
  const who = identity(now());
  const minted = await mintToken(await testKeyRing(), {
    issuer: ISSUER,
    target,
    identity: who,
    rule: "r",
    now: now(),
    lifetimeSeconds: resolved.mintLifetimeSeconds,
  });
  const result = await exchange(target, minted, resolved, who, {
    deps: deps(overrides),
    config: configFor(ns),
    retry: FAST_RETRY,
  });
  return { ...result, minted };
}

const gcpScenario = {
  gcp: {
    provider: WIP,
    condition: { project_path: "platform/infra" },
    serviceAccounts: { [SA]: ["target:gcp-deploy"] },
  },
};

describe("gcp", () => {
  it("times the upstream calls (a lower bound: STS was held 60 ms)", async () => {
    const { upstreamMs } = await run(
      newNamespace(),
      gcpTarget(),
      { lifetimeSeconds: 1200 },
      { ...gcpScenario, faults: { "gcp-sts": [{ delayMs: 60 }] } },
    );
    expect(upstreamMs).toBeGreaterThanOrEqual(50);
  });

  it("exchanges via STS, then impersonates the service account with the requested lifetime", async () => {
    const ns = newNamespace();
    // One fixed clock for gatepass and the stand-ins: the expiry is exact, whatever the scheduler does
    // between them (with two real clocks their seconds can differ by one).
    const fixed = Date.now();
    const { credential } = await run(
      ns,
      gcpTarget(),
      { lifetimeSeconds: 1200 },
      { ...gcpScenario, now: fixed },
      { now: () => fixed },
    );
    expect(credential).toMatchObject({
      kind: "access_token",
      provider: "gcp",
      serviceAccount: SA,
      scopes: ["https://www.googleapis.com/auth/cloud-platform"],
    });
    expect(credential.expiresAt).toBe(Math.floor(fixed / 1000) + 1200);
    const [sts, iam] = await capturedRequests(ns);
    expect(sts!.body).toMatchObject({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      audience: `//iam.googleapis.com/${WIP}`,
      requested_token_type: "urn:ietf:params:oauth:token-type:access_token",
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
    });
    expect(sts!.claims).toMatchObject({ iss: ISSUER, sub: "target:gcp-deploy", aud: `//iam.googleapis.com/${WIP}` });
    expect(sts!.headers.authorization).toBeUndefined();
    expect(iam!.path).toBe(`gcp/iam/v1/projects/-/serviceAccounts/${encodeURIComponent(SA)}:generateAccessToken`);
    expect(iam!.body).toEqual({ scope: ["https://www.googleapis.com/auth/cloud-platform"], lifetime: "1200s" });
    expect(iam!.headers.authorization).toMatch(/^Bearer ya29\.federated-/);
  });

  it("returns the federated token itself when the target has no service account", async () => {
    const ns = newNamespace();
    const { credential } = await run(
      ns,
      gcpTarget({ service_account: undefined }),
      { scopes: ["https://www.googleapis.com/auth/devstorage.read_only"] },
      gcpScenario,
    );
    expect(credential).toMatchObject({
      kind: "access_token",
      scopes: ["https://www.googleapis.com/auth/devstorage.read_only"],
    });
    expect((credential as { accessToken: string }).accessToken).toMatch(/^ya29\.federated-/);
    const requests = await capturedRequests(ns);
    expect(requests).toHaveLength(1);
    expect(requests[0]!.body.scope).toBe("https://www.googleapis.com/auth/devstorage.read_only");
  });

  it("asks generateIdToken when an audience is requested", async () => {
    const ns = newNamespace();
    const { credential } = await run(
      ns,
      gcpTarget({ id_token_audiences: ["https://run.example.app"] }),
      { audience: "https://run.example.app" },
      gcpScenario,
    );
    expect(credential).toMatchObject({ kind: "id_token", audience: "https://run.example.app", serviceAccount: SA });
    expect((await capturedRequests(ns))[1]!.body).toEqual({ audience: "https://run.example.app", includeEmail: true });
  });

  it("asks STS for cloud-platform before impersonating, whatever the credential's scopes", async () => {
    const ns = newNamespace();
    await run(
      ns,
      gcpTarget({ id_token_audiences: ["https://run.example.app"] }),
      { audience: "https://run.example.app" },
      gcpScenario,
    );
    const [sts] = await capturedRequests(ns);
    expect(sts!.body.scope).toBe("https://www.googleapis.com/auth/cloud-platform");
  });

  it.each([
    [
      "a missing pool/provider",
      { gcp: { ...gcpScenario.gcp, provider: "projects/1/locations/global/workloadIdentityPools/x/providers/y" } },
      "invalid_target",
    ],
    [
      "the attribute condition",
      { gcp: { ...gcpScenario.gcp, condition: { project_path: "other/project" } } },
      "unauthorized_client",
    ],
    [
      "missing impersonation rights",
      { gcp: { ...gcpScenario.gcp, serviceAccounts: { [SA]: ["target:other"] } } },
      "PERMISSION_DENIED",
    ],
    ["an unknown service account", { gcp: { ...gcpScenario.gcp, serviceAccounts: {} } }, "NOT_FOUND"],
  ])("maps a refusal by %s to upstream_denied", async (_name, scenario, upstreamError) => {
    const err = await failure(run(newNamespace(), gcpTarget(), {}, scenario));
    expect(err.code).toBe("upstream_denied");
    expect(err.details.upstream_error).toBe(upstreamError);
  });

  it("refuses a token signed by a key the cloud does not know (invalid_grant)", async () => {
    const ns = newNamespace();
    await setScenario(ns, { trust: { issuer: ISSUER, jwks: { keys: [] } }, ...gcpScenario });
    const target = gcpTarget();
    const resolved = resolveExchange(target, {});
    const who = identity(now());
    const minted = await mintToken(await testKeyRing(), {
      issuer: ISSUER,
      target,
      identity: who,
      rule: "r",
      now: now(),
      lifetimeSeconds: 60,
    });
    const err = await failure(
      exchange(target, minted, resolved, who, { deps: deps(), config: configFor(ns), retry: FAST_RETRY }),
    );
    expect(err.details.upstream_error).toBe("invalid_grant");
  });

  it("maps a 2xx without a token to upstream_unavailable", async () => {
    const err = await failure(
      run(
        newNamespace(),
        gcpTarget(),
        {},
        { ...gcpScenario, faults: { "gcp-sts": [{ status: 200, body: '{"expires_in":3600}' }] } },
      ),
    );
    expect(err.code).toBe("upstream_unavailable");
    expect(err.details.upstream_error).toBe("malformed_response");
  });

  // An expiry that is not a sane whole number must never reach the formatters (1e300 overflowed
  // Date into a 500 after the credential had been issued): it is a malformed answer.
  it.each([
    ["1e300"],
    ["9e15"],
    ["3599.5"],
    ["0"],
    ["-60"],
    ['"3600"'],
    ["null"],
    [String(MAX_UPSTREAM_EXPIRY_SECONDS + 1)],
  ])("refuses an STS expires_in of %s as malformed", async (expiresIn) => {
    const body = `{"access_token":"ya29.x","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":${expiresIn}}`;
    const err = await failure(
      run(
        newNamespace(),
        gcpTarget({ service_account: undefined }),
        {},
        { ...gcpScenario, faults: { "gcp-sts": [{ status: 200, body }] } },
      ),
    );
    expect(err.code).toBe("upstream_unavailable");
    expect(err.details.upstream_error).toBe("malformed_response");
  });

  it.each([
    [
      "generateAccessToken without accessToken",
      {},
      JSON.stringify({ expireTime: new Date(Date.now() + 3_600_000).toISOString() }),
      "no accessToken/expireTime",
    ],
    ["generateAccessToken without expireTime", {}, '{"accessToken":"ya29.sa-x"}', "no accessToken/expireTime"],
    ["generateIdToken without token", { audience: "https://run.example.app" }, '{"token":""}', "no token"],
  ])("maps a %s to upstream_unavailable", async (_name, request, body, what) => {
    const target = gcpTarget({ id_token_audiences: ["https://run.example.app"] });
    const err = await failure(
      run(newNamespace(), target, request, { ...gcpScenario, faults: { "gcp-iam": [{ status: 200, body }] } }),
    );
    expect(err.code).toBe("upstream_unavailable");
    expect(err.details.upstream_error).toBe("malformed_response");
    expect(err.description).toContain(`(${what})`);
  });

  it("accepts an STS expires_in at the bound", async () => {
    const body = `{"access_token":"ya29.x","token_type":"Bearer","expires_in":${MAX_UPSTREAM_EXPIRY_SECONDS}}`;
    const fixed = Date.now(); // gatepass's clock, fixed: the relative expiry is exact
    const { credential } = await run(
      newNamespace(),
      gcpTarget({ service_account: undefined }),
      {},
      { ...gcpScenario, faults: { "gcp-sts": [{ status: 200, body }] } },
      { now: () => fixed },
    );
    expect(credential.expiresAt).toBe(Math.floor(fixed / 1000) + MAX_UPSTREAM_EXPIRY_SECONDS);
  });

  it.each([
    ["+275760-09-13T00:00:00.000Z"],
    ["9999-12-31T23:59:59Z"],
    ["2001-01-01T00:00:00Z"],
    ["soon"],
    [new Date(Date.now() + 2 * 86_400_000).toISOString()],
  ])("refuses a generateAccessToken expireTime of %s as malformed", async (expireTime) => {
    const body = JSON.stringify({ accessToken: "ya29.sa-x", expireTime });
    const err = await failure(
      run(newNamespace(), gcpTarget(), {}, { ...gcpScenario, faults: { "gcp-iam": [{ status: 200, body }] } }),
    );
    expect(err.code).toBe("upstream_unavailable");
    expect(err.details.upstream_error).toBe("malformed_response");
  });

  it.each([
    ["an exp of 1e300", { exp: 1e300 }],
    ["no exp", {}],
    ["an exp in the past", { exp: 1_000_000_000 }],
  ])("refuses a generateIdToken token with %s as malformed", async (_name, claims) => {
    const part = (o: object) => btoa(JSON.stringify(o)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
    const body = JSON.stringify({
      token: `${part({ alg: "RS256", typ: "JWT" })}.${part({ iss: "https://accounts.google.com", aud: "https://run.example.app", ...claims })}.c2ln`,
    });
    const target = gcpTarget({ id_token_audiences: ["https://run.example.app"] });
    const err = await failure(
      run(
        newNamespace(),
        target,
        { audience: "https://run.example.app" },
        { ...gcpScenario, faults: { "gcp-iam": [{ status: 200, body }] } },
      ),
    );
    expect(err.code).toBe("upstream_unavailable");
    expect(err.details.upstream_error).toBe("malformed_response");
  });
});

describe("aws", () => {
  const roles = {
    roles: {
      "arn:aws:iam::111122223333:role/deploy": {
        sub: "target:aws-deploy",
        aud: "sts.amazonaws.com",
        maxSessionDuration: 7200,
      },
    },
  };

  it("assumes the role with a job-derived session name and parses the XML answer", async () => {
    const ns = newNamespace();
    const { credential } = await run(
      ns,
      awsTarget({ max_lifetime_seconds: 7200 }),
      { lifetimeSeconds: 1800 },
      { aws: { ...roles, hostileSecret: true } },
    );
    expect(credential).toMatchObject({
      kind: "aws",
      region: "eu-west-1",
      assumedRoleArn: "arn:aws:sts::111122223333:assumed-role/deploy/gitlab-1234",
    });
    const aws = credential as { accessKeyId: string; secretAccessKey: string; sessionToken: string };
    expect(aws.accessKeyId).toMatch(/^ASIA/);
    expect(aws.secretAccessKey.endsWith(`&<'"$(id)`)).toBe(true);
    const [request] = await capturedRequests(ns);
    expect(request!.path).toBe("aws/eu-west-1/");
    expect(request!.body).toMatchObject({
      Action: "AssumeRoleWithWebIdentity",
      Version: "2011-06-15",
      RoleArn: "arn:aws:iam::111122223333:role/deploy",
      RoleSessionName: "gitlab-1234",
      DurationSeconds: "1800",
    });
    expect(request!.claims).toMatchObject({ sub: "target:aws-deploy", aud: "sts.amazonaws.com" });
  });

  it.each([
    [
      "AccessDenied",
      { roles: { "arn:aws:iam::111122223333:role/deploy": { sub: "target:someone-else", aud: "sts.amazonaws.com" } } },
    ],
    [
      "InvalidIdentityToken",
      { roles: { "arn:aws:iam::111122223333:role/deploy": { sub: "target:aws-deploy", aud: "other-client-id" } } },
    ],
    [
      "ValidationError",
      {
        roles: {
          "arn:aws:iam::111122223333:role/deploy": {
            sub: "target:aws-deploy",
            aud: "sts.amazonaws.com",
            maxSessionDuration: 900,
          },
        },
      },
    ],
  ])("maps %s to upstream_denied", async (code, aws) => {
    const err = await failure(run(newNamespace(), awsTarget(), {}, { aws }));
    expect(err.code).toBe("upstream_denied");
    expect(err.details.upstream_error).toBe(code);
  });

  it("retries IDPCommunicationError (transient although a 400)", async () => {
    const ns = newNamespace();
    const body =
      "<ErrorResponse><Error><Type>Sender</Type><Code>IDPCommunicationError</Code><Message>x</Message></Error></ErrorResponse>";
    await run(
      ns,
      awsTarget(),
      {},
      { aws: roles, faults: { "aws-sts": [{ status: 400, body, contentType: "text/xml" }] } },
    );
    expect(await capturedRequests(ns)).toHaveLength(2);
  });

  it("maps a 2xx without complete Credentials to upstream_unavailable", async () => {
    // Every other field is valid (an Expiration within the bound), so only the missing one is wrong.
    const credentials = {
      AccessKeyId: "ASIAEXAMPLE",
      SecretAccessKey: "secret",
      SessionToken: "session",
      Expiration: new Date(Date.now() + 3_600_000).toISOString(),
    };
    for (const missing of Object.keys(credentials)) {
      const fields = Object.entries(credentials)
        .filter(([name]) => name !== missing)
        .map(([name, value]) => `<${name}>${value}</${name}>`)
        .join("");
      const body = `<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>${fields}</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>`;
      const err = await failure(
        run(
          newNamespace(),
          awsTarget(),
          {},
          { aws: roles, faults: { "aws-sts": [{ status: 200, body, contentType: "text/xml" }] } },
        ),
      );
      expect(err.code).toBe("upstream_unavailable");
      expect(err.details.upstream_error).toBe("malformed_response");
      expect(err.description).toContain("(no Credentials)");
    }
  });

  it.each([
    ["9999-12-31T23:59:59Z"],
    ["+275760-09-13T00:00:00.000Z"],
    ["2001-01-01T00:00:00Z"],
    ["tomorrow"],
    [new Date(Date.now() + 2 * 86_400_000).toISOString()],
  ])("refuses an Expiration of %s as malformed", async (expiration) => {
    const body = `<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>secret</SecretAccessKey><SessionToken>session</SessionToken><Expiration>${expiration}</Expiration></Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>`;
    const err = await failure(
      run(
        newNamespace(),
        awsTarget(),
        {},
        { aws: roles, faults: { "aws-sts": [{ status: 200, body, contentType: "text/xml" }] } },
      ),
    );
    expect(err.code).toBe("upstream_unavailable");
    expect(err.details.upstream_error).toBe("malformed_response");
  });

  it("refuses a region that is not an AWS region name (it goes into the URL) before any request", async () => {
    const sent: string[] = [];
    const recording: typeof fetch = (input, init) => {
      sent.push(String(input));
      return fetch(input, init);
    };
    const err = await failure(
      run(newNamespace(), awsTarget({ region: "x.evil/" }), {}, { aws: roles }, { fetch: recording }),
    );
    expect(err.code).toBe("internal_error");
    expect(sent).toEqual([]);
  });

  it("calls the regional STS endpoint: under amazonaws.com, or amazonaws.com.cn in China's regions", () => {
    const template = readConfig({ ...env, AWS_STS_URL: undefined } as Env).upstreams.awsSts;
    expect(stsUrl(template, "eu-west-1")).toBe("https://sts.eu-west-1.amazonaws.com/");
    expect(stsUrl(template, "us-gov-west-1")).toBe("https://sts.us-gov-west-1.amazonaws.com/");
    expect(stsUrl(template, "cn-north-1")).toBe("https://sts.cn-north-1.amazonaws.com.cn/");
  });

  it("sanitises the session name to AWS's alphabet and length", () => {
    const who = identity(now());
    expect(sessionName({ ...who, claims: { ...who.claims, job_id: "12 34/<x>" } })).toBe("gitlab-12-34--x-");
    expect(sessionName({ ...who, claims: { ...who.claims, job_id: "9".repeat(80) } })).toHaveLength(64);
    expect(sessionName({ ...who, claims: {} })).toBe(`gatepass-${"ab".repeat(8)}`);
  });
});

describe("aws XML reader", () => {
  const doc = "<R><Result><Credentials><AccessKeyId>AK&amp;&#65;&#x42;</AccessKeyId></Credentials></Result></R>";
  it("reads a documented element and decodes entities", () => {
    expect(xmlText(doc, ["R", "Result", "Credentials", "AccessKeyId"])).toBe("AK&AB");
  });
  it.each([
    ["a DOCTYPE", `<!DOCTYPE x [<!ENTITY e "boom">]>${doc}`],
    [
      "a duplicated element",
      doc.replace("</Credentials>", "</Credentials><Credentials><AccessKeyId>B</AccessKeyId></Credentials>"),
    ],
    ["a child element in a leaf", doc.replace("AK&amp;", "<b>AK</b>")],
    ["an unknown entity", doc.replace("&amp;", "&e;")],
    ["a bare ampersand", doc.replace("&amp;", "& ")],
    ["CDATA", doc.replace("AK&amp;", "<![CDATA[AK]]>")],
    ["a reference to NUL", doc.replace("&#65;", "&#0;")],
    ["a reference to a control character", doc.replace("&#x42;", "&#x1b;")],
    ["a reference to a surrogate", doc.replace("&#65;", "&#xD800;")],
  ])("refuses %s", (_name, xml) => {
    // Not toBeUndefined(): its failure message would quote the decoded text, and a lone surrogate
    // there breaks the test pool's connection (invalid UTF-8 in a WebSocket frame).
    expect(xmlText(xml, ["R", "Result", "Credentials", "AccessKeyId"]) === undefined).toBe(true);
  });
  it("refuses an element name that is not a plain name (it goes into a regular expression)", () => {
    expect(() => xmlText(doc, ["R", "Result|Credentials"])).toThrow(/bad element name/);
  });
});

describe("azure", () => {
  const apps = {
    apps: {
      "11111111-2222-3333-4444-555555555555": {
        tenant: "00000000-0000-0000-0000-00000000000a",
        sub: "target:azure-deploy",
      },
    },
  };

  it("presents the minted token as a client assertion", async () => {
    const ns = newNamespace();
    const { credential } = await run(ns, azureTarget(), {}, { azure: apps });
    expect(credential).toMatchObject({
      kind: "access_token",
      provider: "azure",
      scopes: ["https://management.azure.com/.default"],
    });
    const [request] = await capturedRequests(ns);
    expect(request!.body).toMatchObject({
      grant_type: "client_credentials",
      client_id: "11111111-2222-3333-4444-555555555555",
      scope: "https://management.azure.com/.default",
      client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    });
    expect(request!.claims).toMatchObject({ aud: "api://AzureADTokenExchange", sub: "target:azure-deploy" });
    // Entra ID verifies RSA signatures only (its stand-in refuses anything else, as Entra does).
    expect(request!.header).toMatchObject({ alg: "RS256" });
  });

  it("tells the admin to push again when a snapshot from before the RS256 rule still signs ES256", async () => {
    const err = await failure(run(newNamespace(), { ...azureTarget(), signing_alg: "ES256" }, {}, { azure: apps }));
    expect(err.code).toBe("upstream_denied");
    expect(err.details.upstream_error).toBe("AADSTS5002738");
    expect(err.description).toContain("push the policies again with the current gatepass CLI");
  });

  it("reports Entra's AADSTS code when no federated credential matches", async () => {
    const err = await failure(
      run(
        newNamespace(),
        azureTarget(),
        {},
        {
          azure: {
            apps: {
              "11111111-2222-3333-4444-555555555555": {
                tenant: "00000000-0000-0000-0000-00000000000a",
                sub: "target:x",
              },
            },
          },
        },
      ),
    );
    expect(err.code).toBe("upstream_denied");
    expect(err.details.upstream_error).toBe("AADSTS700213");
    expect(err.description).toContain("federated credential");
  });

  it.each([
    ['"1e300"'],
    ["1e300"],
    ['"0x10"'],
    ['" 3599"'],
    ['"3599.5"'],
    ["3599.5"],
    ["0"],
    ['"-1"'],
    [String(MAX_UPSTREAM_EXPIRY_SECONDS + 1)],
  ])("refuses an expires_in of %s as malformed", async (expiresIn) => {
    const body = `{"token_type":"Bearer","expires_in":${expiresIn},"access_token":"eyJ0eXAi.azure-x"}`;
    const err = await failure(
      run(newNamespace(), azureTarget(), {}, { azure: apps, faults: { azure: [{ status: 200, body }] } }),
    );
    expect(err.code).toBe("upstream_unavailable");
    expect(err.details.upstream_error).toBe("malformed_response");
  });

  it.each([
    ['{"token_type":"Bearer","expires_in":3599}'],
    ['{"token_type":"Bearer","access_token":"","expires_in":3599}'],
    ['{"token_type":"Bearer","access_token":"eyJ0eXAi.azure-x"}'],
  ])("maps a 2xx of %s to upstream_unavailable", async (body) => {
    const err = await failure(
      run(newNamespace(), azureTarget(), {}, { azure: apps, faults: { azure: [{ status: 200, body }] } }),
    );
    expect(err.code).toBe("upstream_unavailable");
    expect(err.description).toContain("(no access_token/expires_in)");
  });

  it("reads an expires_in sent as a string of digits", async () => {
    const body = '{"token_type":"Bearer","expires_in":"3599","access_token":"eyJ0eXAi.azure-x"}';
    const fixed = Date.now(); // gatepass's clock, fixed: the relative expiry is exact
    const { credential } = await run(
      newNamespace(),
      azureTarget(),
      {},
      { azure: apps, faults: { azure: [{ status: 200, body }] } },
      { now: () => fixed },
    );
    expect(credential.expiresAt).toBe(Math.floor(fixed / 1000) + 3599);
  });

  it("takes the AADSTS code from error_codes when the description does not name it", async () => {
    const body = JSON.stringify({
      error: "invalid_client",
      error_description: "No matching federated identity record found.",
      error_codes: [700213],
    });
    const err = await failure(
      run(newNamespace(), azureTarget(), {}, { azure: apps, faults: { azure: [{ status: 400, body }] } }),
    );
    expect(err.code).toBe("upstream_denied");
    expect(err.details.upstream_error).toBe("AADSTS700213");
  });
});

describe("vault", () => {
  const role = {
    mount: "gatepass",
    boundAudiences: ["vault"],
    boundSubject: "target:vault-ci",
    ttl: 900,
    policies: ["deploy"],
  };

  it("logs in with the minted token and returns the client token and lease", async () => {
    const ns = newNamespace();
    const fixed = Date.now(); // gatepass's clock, fixed: the lease's expiry is exact
    const { credential } = await run(
      ns,
      vaultTarget(ns),
      {},
      { vault: { jwtSupportedAlgs: VAULT_ALGS, roles: { ci: role } } },
      { now: () => fixed },
    );
    expect(credential).toMatchObject({
      kind: "vault",
      leaseDurationSeconds: 900,
      renewable: true,
      policies: ["default", "deploy"],
    });
    expect(credential.expiresAt).toBe(Math.floor(fixed / 1000) + 900);
    const [request] = await capturedRequests(ns);
    expect(request!.path).toBe("vault/v1/auth/gatepass/login");
    expect(request!.body.role).toBe("ci");
  });

  it("tells the admin when the mount's jwt_supported_algs leaves out the target's algorithm", async () => {
    const ns = newNamespace();
    const rsaOnly = { vault: { jwtSupportedAlgs: ["RS256"], roles: { ci: role } } };
    const err = await failure(run(ns, vaultTarget(ns), {}, rsaOnly));
    expect(err.code).toBe("upstream_denied");
    expect(err.details.upstream_error).toMatch(/unexpected algorithm/);
    expect(err.description).toContain(
      "the mount's jwt_supported_algs does not include ES256: add it on auth/gatepass/config.",
    );
    // An RS256 target passes the same mount, and without jwt_supported_algs Vault takes either.
    expect((await run(ns, vaultTarget(ns, { signing_alg: "RS256" }), {}, rsaOnly)).credential).toMatchObject({
      kind: "vault",
    });
    expect((await run(ns, vaultTarget(ns), {}, { vault: { roles: { ci: role } } })).credential).toMatchObject({
      kind: "vault",
    });
  });

  it("logs in within the target's namespace (Vault Enterprise, HCP Vault) and hands the namespace on", async () => {
    const ns = newNamespace();
    const scoped = { ...role, namespace: "admin/team-a" };
    const { credential } = await run(
      ns,
      vaultTarget(ns, { namespace: "admin/team-a" }),
      {},
      { vault: { jwtSupportedAlgs: VAULT_ALGS, roles: { ci: scoped } } },
    );
    expect(credential).toMatchObject({ kind: "vault", namespace: "admin/team-a" });
    expect((await capturedRequests(ns))[0]!.headers["x-vault-namespace"]).toBe("admin/team-a");
    // Without the namespace, Vault looks for the mount in the root namespace and refuses.
    const err = await failure(
      run(ns, vaultTarget(ns), {}, { vault: { jwtSupportedAlgs: VAULT_ALGS, roles: { ci: scoped } } }),
    );
    expect(err.code).toBe("upstream_denied");
    expect(err.details.upstream_error).toBe("permission denied");
    expect(err.description).toContain("the target's namespace (none: the root namespace)");
  });

  it("refuses a target whose namespace could not be a header value, before any request", async () => {
    const ns = newNamespace();
    const err = await failure(
      run(
        ns,
        vaultTarget(ns, { namespace: "admin\r\nX-Injected: 1" }),
        {},
        { vault: { jwtSupportedAlgs: VAULT_ALGS, roles: { ci: role } } },
      ),
    );
    expect(err.code).toBe("internal_error");
    expect(await capturedRequests(ns)).toEqual([]);
  });

  it("reports Vault's error message as the upstream error", async () => {
    const ns = newNamespace();
    const err = await failure(
      run(ns, vaultTarget(ns, { role: "nope" }), {}, { vault: { jwtSupportedAlgs: VAULT_ALGS, roles: { ci: role } } }),
    );
    expect(err.code).toBe("upstream_denied");
    expect(err.details.upstream_error).toBe("role nope could not be found");
    expect(err.description).toContain("check the Vault role nope (bound_audiences");
  });

  it.each([
    ['{"auth":null}'],
    ['{"auth":{"lease_duration":900}}'],
    ['{"auth":{"client_token":"hvs.x","lease_duration":"900"}}'],
  ])("maps a 2xx of %s to upstream_unavailable", async (body) => {
    const ns = newNamespace();
    const err = await failure(
      run(
        ns,
        vaultTarget(ns),
        {},
        { vault: { jwtSupportedAlgs: VAULT_ALGS, roles: { ci: role } }, faults: { vault: [{ status: 200, body }] } },
      ),
    );
    expect(err.code).toBe("upstream_unavailable");
    expect(err.description).toContain("(no auth.client_token/lease_duration)");
  });

  it("refuses a token without TTL", async () => {
    const ns = newNamespace();
    const err = await failure(
      run(ns, vaultTarget(ns), {}, { vault: { jwtSupportedAlgs: VAULT_ALGS, roles: { ci: { ...role, ttl: 0 } } } }),
    );
    expect(err.code).toBe("upstream_denied");
    expect(err.details.upstream_error).toBe("no_ttl");
  });

  // Vault's default TTL (768 h, renewable) when the role sets no token_ttl, and anything else beyond
  // the target's max_lifetime: refused with its own code, the token never handed out.
  it.each([[3601], [2_764_800], [9e15]])(
    "refuses a lease of %s s beyond the target's max_lifetime of 3600 s",
    async (ttl) => {
      const ns = newNamespace();
      const logged: string[] = [];
      const original = console.warn;
      console.warn = (...args: unknown[]) => void logged.push(args.map(String).join(" "));
      let err: GatepassError;
      try {
        err = await failure(
          run(ns, vaultTarget(ns), {}, { vault: { jwtSupportedAlgs: VAULT_ALGS, roles: { ci: { ...role, ttl } } } }),
        );
      } finally {
        console.warn = original;
      }
      expect(err.code).toBe("upstream_ttl_too_long");
      expect(err.status).toBe(502);
      expect(err.details).toMatchObject({
        upstream_error: "ttl_too_long",
        upstream_lease_seconds: ttl,
        max_lifetime_seconds: 3600,
      });
      expect(err.description).toContain("token_ttl");
      expect(err.description).toContain("token_max_ttl");
      expect(JSON.stringify([err.description, err.details, err.message, logged])).not.toContain("hvs.");
      expect(logged.join("\n")).toContain("vault_token_refused");
    },
  );

  it("accepts a lease of exactly the target's max_lifetime", async () => {
    const ns = newNamespace();
    const { credential } = await run(
      ns,
      vaultTarget(ns, { max_lifetime_seconds: 900 }),
      {},
      { vault: { jwtSupportedAlgs: VAULT_ALGS, roles: { ci: role } } },
    );
    expect(credential).toMatchObject({ kind: "vault", leaseDurationSeconds: 900 });
  });

  it.each([["1e300"], ["900.5"], ["-900"], ['"900"']])("refuses a lease_duration of %s as malformed", async (lease) => {
    const ns = newNamespace();
    const body = `{"auth":{"client_token":"hvs.x","accessor":"a","policies":["default"],"lease_duration":${lease},"renewable":true}}`;
    const err = await failure(
      run(
        ns,
        vaultTarget(ns),
        {},
        { vault: { jwtSupportedAlgs: VAULT_ALGS, roles: { ci: role } }, faults: { vault: [{ status: 200, body }] } },
      ),
    );
    expect(err.code).toBe("upstream_unavailable");
    expect(err.details.upstream_error).toBe("malformed_response");
  });

  it("refuses a plain-http Vault address outside development", async () => {
    const ns = newNamespace();
    await setScenario(ns, { trust: { issuer: ISSUER } });
    const target = vaultTarget(ns);
    const who = identity(now());
    const minted = await mintToken(await testKeyRing(), {
      issuer: ISSUER,
      target,
      identity: who,
      rule: "r",
      now: now(),
      lifetimeSeconds: 60,
    });
    const config = { ...configFor(ns), development: false };
    const err = await failure(
      exchange(target, minted, resolveExchange(target, {}), who, { deps: deps(), config, retry: FAST_RETRY }),
    );
    expect(err.code).toBe("internal_error");
    expect(await capturedRequests(ns)).toHaveLength(0);
  });
});

describe("oidc", () => {
  it("hands out the minted token itself without any upstream call", async () => {
    const ns = newNamespace();
    const { credential, minted, upstreamMs } = await run(ns, oidcTarget(), { lifetimeSeconds: 600 });
    expect(credential).toMatchObject({
      kind: "id_token",
      idToken: minted.token,
      audience: "https://rp.example.com",
      expiresAt: minted.claims.exp,
    });
    expect(minted.claims.exp - minted.claims.iat).toBe(600);
    expect(upstreamMs).toBe(0);
    expect(await capturedRequests(ns)).toHaveLength(0);
  });
});
