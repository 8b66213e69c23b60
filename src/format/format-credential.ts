// Output formats of POST /v1/credentials/:target.

import { GatepassError } from "../errors";
import type { Credential } from "../providers/provider-credential";
import { credentialEnv, credentialJson, credentialProcess } from "./credential-views";
import { formatDotenv, formatEnv } from "./shell-quoting";

export const FORMATS = ["json", "env", "dotenv", "credential_process", "gcloud"] as const;
export type Format = (typeof FORMATS)[number];

export function parseFormat(value: string | undefined): Format {
  if (value === undefined) return "json";
  if ((FORMATS as readonly string[]).includes(value)) return value as Format;
  throw new GatepassError("format_unsupported", { description: `Unknown format; use one of ${FORMATS.join(", ")}.` });
}

export interface Rendered {
  body: string;
  contentType: string;
}

/** Renders a credential (gcloud is not a credential format: see gcloud-config.ts). */
export function renderCredential(credential: Credential, format: Exclude<Format, "gcloud">, now: number): Rendered {
  switch (format) {
    case "json":
      return { body: JSON.stringify(credentialJson(credential, now)), contentType: "application/json" };
    case "env":
      return { body: formatEnv(credentialEnv(credential)), contentType: "text/plain; charset=utf-8" };
    case "dotenv":
      return { body: formatDotenv(credentialEnv(credential)), contentType: "text/plain; charset=utf-8" };
    case "credential_process":
      return { body: JSON.stringify(credentialProcess(credential)), contentType: "application/json" };
  }
}

/** Refuses a format the target cannot produce, before anything is minted or sent upstream. */
export function assertFormatFor(targetType: string, format: Format): void {
  if (format === "credential_process" && targetType !== "aws") {
    throw new GatepassError("format_unsupported", {
      description: "format=credential_process is only available for aws targets.",
    });
  }
  if (format === "gcloud" && targetType !== "gcp") {
    throw new GatepassError("format_unsupported", { description: "format=gcloud is only available for gcp targets." });
  }
}
