// Identities for offline evaluation (policy tests, explain): claims as GitLab sends them, or taken from
// a token's payload, normalised by the Worker's own code (so a claim the Worker refuses is refused here
// too). Nothing here verifies a signature: it answers "what would the policy decide for these claims".

import { isPlainObject } from "../../src/encoding";

/** The payload of a compact JWT, without verifying it. */
export function decodeTokenPayload(token: string): Record<string, unknown> {
  const parts = token.trim().split(".");
  if (parts.length !== 3) throw new Error("the token is not a compact JWT (three dot-separated parts)");
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
  } catch {
    throw new Error("the token's payload is not base64url-encoded JSON");
  }
  if (!isPlainObject(payload)) throw new Error("the token's payload is not a JSON object");
  return payload;
}

export { offlineIdentity, resolveIssuer } from "../../src/policy/case-runner";
