// What every provider gets for its upstream calls: the injected deps, retry policy and timer
// (UpstreamContext) and the validated config. A leaf module, so providers need not import the dispatch.

import type { Config } from "../config";
import type { UpstreamContext } from "./upstream-call";

export interface ProviderContext extends UpstreamContext {
  config: Config;
}
