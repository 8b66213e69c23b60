// The admin token as presented: read from the Authorization header (within a cap) and compared in
// constant time. Shared by the admin-token-only routes, the key push and the capability routes.

import type { Context } from "hono";
import type { AppEnv } from "../http/app-env";
import { MAX_ADMIN_HEADER_LENGTH } from "../limits";

/** The bearer value of the Authorization header, if it has the shape of one (headers over the cap are not read). */
export function presentedBearer(c: Context<AppEnv>): string | undefined {
  const header = c.req.header("Authorization") ?? "";
  return header.length <= MAX_ADMIN_HEADER_LENGTH ? /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)?.[1] : undefined;
}

/** Constant-time comparison: both sides are hashed first, so neither length nor content leaks through timing. */
export async function adminTokenMatches(presented: string, expected: string): Promise<boolean> {
  const digest = (text: string) => crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  const [a, b] = await Promise.all([digest(presented), digest(expected)]);
  return crypto.subtle.timingSafeEqual(a, b);
}
