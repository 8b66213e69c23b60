// Extracts the caller's token from `Authorization: Bearer`, with the size cap applied before any parsing.

import { GatepassError } from "../errors";
import { MAX_TOKEN_BYTES } from "../limits";

export function bearerToken(authorization: string | undefined | null): string {
  if (!authorization) throw new GatepassError("token_missing");
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization.length > MAX_TOKEN_BYTES + 64 ? "" : authorization);
  if (!match) {
    if (authorization.length > MAX_TOKEN_BYTES) throw new GatepassError("token_too_large");
    throw new GatepassError("token_missing");
  }
  const token = match[1]!;
  if (token.length > MAX_TOKEN_BYTES) throw new GatepassError("token_too_large");
  return token;
}
