import { describe, expect, it } from "vitest";
import { assertFormatFor, parseFormat, renderCredential } from "../../../src/format/format-credential";
import { gcloudConfig } from "../../../src/format/gcloud-config";
import { formatDotenv, formatEnv, JOB_VARIABLES, shellQuote } from "../../../src/format/shell-quoting";
import type { AwsCredential, Credential } from "../../../src/providers/provider-credential";
import { gcpTarget, ISSUER } from "./fixtures";

const NOW = 1_800_000_000;
const aws: AwsCredential = {
  kind: "aws",
  provider: "aws",
  target: "aws-deploy",
  accessKeyId: "ASIAEXAMPLE",
  secretAccessKey: "s3cr/t+key=",
  sessionToken: "FwoG+/=",
  expiresAt: NOW + 3600,
  region: "eu-west-1",
  assumedRoleArn: "arn:aws:sts::1:assumed-role/deploy/gitlab-1",
};
const gcp: Credential = {
  kind: "access_token",
  provider: "gcp",
  target: "gcp-deploy",
  accessToken: "ya29.x",
  scopes: ["a", "b"],
  expiresAt: NOW + 600,
  serviceAccount: "sa@p.iam.gserviceaccount.com",
};
const vault: Credential = {
  kind: "vault",
  provider: "vault",
  target: "v",
  clientToken: "hvs.x",
  address: "https://vault.example.com",
  leaseDurationSeconds: 900,
  renewable: true,
  policies: ["p"],
  expiresAt: NOW + 900,
};

describe("json", () => {
  it("aws: snake_case keys, RFC 3339 expiry and integer expires_in", () => {
    expect(JSON.parse(renderCredential(aws, "json", NOW).body)).toEqual({
      target: "aws-deploy",
      provider: "aws",
      expires_at: "2027-01-15T09:00:00Z",
      expires_in: 3600,
      access_key_id: "ASIAEXAMPLE",
      secret_access_key: "s3cr/t+key=",
      session_token: "FwoG+/=",
      region: "eu-west-1",
      assumed_role_arn: "arn:aws:sts::1:assumed-role/deploy/gitlab-1",
    });
  });
  it("gcp access token", () => {
    expect(JSON.parse(renderCredential(gcp, "json", NOW).body)).toMatchObject({
      access_token: "ya29.x",
      token_type: "Bearer",
      scope: "a b",
      expires_in: 600,
      service_account: "sa@p.iam.gserviceaccount.com",
    });
  });
});

describe("env and dotenv", () => {
  it("writes the variables each cloud's tools read", () => {
    expect(renderCredential(gcp, "env", NOW).body).toBe(
      "export GOOGLE_OAUTH_ACCESS_TOKEN='ya29.x'\nexport CLOUDSDK_AUTH_ACCESS_TOKEN='ya29.x'\n",
    );
    expect(renderCredential(aws, "env", NOW).body).toBe(
      "export AWS_ACCESS_KEY_ID='ASIAEXAMPLE'\nexport AWS_SECRET_ACCESS_KEY='s3cr/t+key='\nexport AWS_SESSION_TOKEN='FwoG+/='\nexport AWS_CREDENTIAL_EXPIRATION='2027-01-15T09:00:00Z'\n",
    );
    expect(renderCredential(vault, "dotenv", NOW).body).toBe(
      "VAULT_TOKEN=hvs.x\nVAULT_ADDR=https://vault.example.com\n",
    );
    expect(renderCredential({ ...vault, namespace: "admin" }, "dotenv", NOW).body).toBe(
      "VAULT_TOKEN=hvs.x\nVAULT_ADDR=https://vault.example.com\nVAULT_NAMESPACE=admin\n",
    );
    expect(JSON.parse(renderCredential({ ...vault, namespace: "admin" }, "json", NOW).body)).toMatchObject({
      vault_addr: "https://vault.example.com",
      vault_namespace: "admin",
    });
    expect(JSON.parse(renderCredential(vault, "json", NOW).body)).not.toHaveProperty("vault_namespace");
  });

  // The CI job's own ID token lives in GATEPASS_ID_TOKEN (templates/gitlab-ci.yml); an issued ID token
  // exported there would make every later gatepass call in the job send it (token_unverified: not its issuer).
  it("exports an issued ID token as GATEPASS_ISSUED_ID_TOKEN, never over the job's GATEPASS_ID_TOKEN", () => {
    for (const provider of ["oidc", "gcp"] as const) {
      const id: Credential = {
        kind: "id_token",
        provider,
        target: "t",
        idToken: "eyJ.a.b",
        audience: "https://rp.example.com",
        expiresAt: NOW + 300,
      };
      expect(renderCredential(id, "env", NOW).body).toBe("export GATEPASS_ISSUED_ID_TOKEN='eyJ.a.b'\n");
      expect(renderCredential(id, "dotenv", NOW).body).toBe("GATEPASS_ISSUED_ID_TOKEN=eyJ.a.b\n");
    }
    const azure: Credential = {
      kind: "access_token",
      provider: "azure",
      target: "a",
      accessToken: "eyJ0.x",
      scopes: ["s"],
      expiresAt: NOW + 600,
    };
    const id: Credential = {
      kind: "id_token",
      provider: "oidc",
      target: "t",
      idToken: "eyJ.a.b",
      audience: "x",
      expiresAt: NOW + 300,
    };
    for (const credential of [aws, gcp, vault, azure, id]) {
      for (const format of ["env", "dotenv"] as const) {
        const names = renderCredential(credential, format, NOW)
          .body.split("\n")
          .filter(Boolean)
          .map((line) => /^(?:export )?([A-Z0-9_]+)=/.exec(line)![1]);
        for (const name of names) expect(JOB_VARIABLES.has(name!)).toBe(false);
      }
    }
    for (const name of JOB_VARIABLES) {
      expect(() => formatEnv([[name, "x"]])).toThrow();
      expect(() => formatDotenv([[name, "x"]])).toThrow();
    }
  });

  it("single-quotes hostile values", () => {
    expect(shellQuote(`a'b`)).toBe(`'a'\\''b'`);
    expect(formatEnv([["X", "$(rm -rf /)`x`\n'"]])).toBe(`export X='$(rm -rf /)\`x\`\n'\\'''\n`);
    expect(() => shellQuote("a\0b")).toThrow(expect.objectContaining({ code: "format_unsupported" }));
  });

  it("refuses dotenv values that would need quoting", () => {
    for (const value of ["a b", "a'b", 'a"b', "a$b", "a\nb", "a#b", "a\\b"]) {
      expect(() => formatDotenv([["X", value]])).toThrow(expect.objectContaining({ code: "format_unsupported" }));
    }
  });
});

describe("credential_process and gcloud", () => {
  it("credential_process is the AWS CLI's Version 1 document", () => {
    expect(JSON.parse(renderCredential(aws, "credential_process", NOW).body)).toEqual({
      Version: 1,
      AccessKeyId: "ASIAEXAMPLE",
      SecretAccessKey: "s3cr/t+key=",
      SessionToken: "FwoG+/=",
      Expiration: "2027-01-15T09:00:00Z",
    });
  });

  it("formats are refused for targets that cannot produce them", () => {
    expect(() => assertFormatFor("gcp", "credential_process")).toThrow(
      expect.objectContaining({ code: "format_unsupported" }),
    );
    expect(() => assertFormatFor("aws", "gcloud")).toThrow(expect.objectContaining({ code: "format_unsupported" }));
    expect(() => renderCredential(gcp, "credential_process", NOW)).toThrow(
      expect.objectContaining({ code: "format_unsupported" }),
    );
    expect(() => parseFormat("yaml")).toThrow(expect.objectContaining({ code: "format_unsupported" }));
    expect(parseFormat(undefined)).toBe("json");
  });

  it("gcloud is an external_account config pointing at gatepass's STS endpoint", () => {
    expect(gcloudConfig(ISSUER, gcpTarget(), "/tmp/t")).toEqual({
      type: "external_account",
      audience: "gcp-deploy",
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      token_url: `${ISSUER}/v1/sts/token`,
      credential_source: { file: "/tmp/t", format: { type: "text" } },
      universe_domain: "googleapis.com",
    });
  });
});
