// policies/ into `gatepass dev`'s local storage: at start unless that version is already active, and
// again after each save while it runs (the Worker, with GATEPASS_POLICY_RECHECK=every-request, serves
// it on the next request).

import { watch } from "node:fs";
import { checkPolicyDir } from "../policy/policy-files";
import { PolicyStorage } from "../policy/policy-storage";
import { withStorage } from "../remote-d1";
import { closeLocalStorage } from "../wrangler";
import { mustSucceed, runCommand } from "./in-process-commands";
import { step } from "./progress-line";
import { keepOnlyForwarders } from "./wrangler-dev-child";

const POLICY_DIR = "policies";
/** How long a burst of file events (an editor's save writes, renames, touches) settles before one push. */
const SAVE_SETTLE_MS = 100;

/** Pushes policies/ at start, unless the version it compiles to is already the active one. */
export async function pushPoliciesUnlessActive(): Promise<void> {
  const active = await activePolicyVersion();
  if (active) step(`policies/: version ${active.slice(0, 12)} is already active (local)`);
  else {
    step("pushing policies/ (local)");
    await mustSucceed("policies", ["push", "--local", "--by", "gatepass-dev"]);
  }
}

/**
 * The version policies/ compiles to, when it is the active one locally; undefined otherwise (push then reports why).
 */
async function activePolicyVersion(): Promise<string | undefined> {
  const result = await checkPolicyDir(POLICY_DIR);
  if (!result.ok) return undefined;
  const { version } = result.snapshot;
  const { active } = await withStorage({ remote: false }, (storage) =>
    new PolicyStorage(storage).findVersions(version),
  );
  return active === version ? version : undefined;
}

/**
 * Pushes policies/ locally after each save (the push validates and tests first, and changes nothing
 * when either fails, so the last good version keeps serving). One push at a time; saves during a
 * push make one more push after it. Returns a function that stops watching.
 */
export function watchPolicies(): () => void {
  let timer: NodeJS.Timeout | undefined;
  let pushing = false;
  let again = false;
  const push = async (): Promise<void> => {
    if (pushing) {
      again = true;
      return;
    }
    pushing = true;
    try {
      step(`${POLICY_DIR}/ changed: validating, testing, pushing (local)`);
      const code = await runCommand("policies", ["push", "--local", "--by", "gatepass-dev"]).catch(
        (err: Error) => (process.stderr.write(`gatepass: ${err.message}\n`), 1),
      );
      if (code !== 0) step("the edit was not pushed; the last good version keeps serving");
    } finally {
      // Between saves this process holds no state open (wrangler dev's Worker reads it), nor Miniflare's signal
      // handlers.
      await closeLocalStorage();
      keepOnlyForwarders();
      pushing = false;
    }
    if (again) {
      again = false;
      await push();
    }
  };
  const watcher = watch(POLICY_DIR, { recursive: true }, () => {
    clearTimeout(timer);
    timer = setTimeout(() => void push(), SAVE_SETTLE_MS);
  });
  return () => {
    clearTimeout(timer);
    watcher.close();
  };
}
