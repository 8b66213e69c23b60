import type { D1Migration } from "cloudflare:test";
import type { Env as GatepassEnv } from "../../src/config";

declare global {
  namespace Cloudflare {
    interface Env extends GatepassEnv {
      TEST_MIGRATIONS: D1Migration[];
      STANDIN_URL: string;
    }
  }
}
