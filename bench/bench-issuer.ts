// The private GitLab issuer the verify and refusals bench Workers verify against (keys pushed, RS256).
import type { IssuerConfig } from "../src/types";

export const BENCH_ISSUER: IssuerConfig = {
  name: "bench-gitlab",
  url: "https://gitlab.bench.example",
  kind: "gitlab",
  aliases: [],
  audiences: ["https://gatepass.bench.example"],
  algorithms: ["RS256"],
  keys: { source: "pushed" },
  max_token_age_seconds: 3600,
  accept_legacy_ci_job_jwt: false,
};
