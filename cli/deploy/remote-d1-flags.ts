// `gatepass deploy` steps 5 and 7: the wrangler flags that reach the Worker's D1 database remotely.

import {
  configCopyDir,
  findDatabase,
  requireDbBinding,
  writeConfigWithDatabaseId,
  type WorkerConfig,
} from "../remote-d1";
import { wrangler } from "../wrangler";
import { StepFailure } from "./deploy-step";

/**
 * Flags that reach the Worker's D1 database remotely (cli/remote-d1.ts). With database_id in the
 * config, the config itself. Without, the database is found by database_name (created if missing,
 * here only: migrations run before the first deploy, which then binds it by name) and a copy of the
 * config carries its id.
 */
export async function remoteD1(
  worker: WorkerConfig,
  options: { env?: string },
  configFlag: string[],
  scratch: string[],
): Promise<{ flags: string[]; note: string }> {
  const env = options.env ? ["--env", options.env] : [];
  const db = requireDbBinding(worker, options.env);
  if (db.database_id)
    return { flags: [...env, ...configFlag], note: `D1 database ${db.database_id} (from the config)` };
  let uuid = await findDatabase(db.database_name!, [...env, ...configFlag]);
  let created = false;
  if (!uuid) {
    await wrangler(["d1", "create", db.database_name!, ...env, ...configFlag]);
    uuid = await findDatabase(db.database_name!, [...env, ...configFlag]);
    if (!uuid)
      throw new StepFailure(`wrangler d1 create ${db.database_name} succeeded, but wrangler d1 list does not show it`);
    created = true;
  }
  const dir = await configCopyDir();
  scratch.push(dir); // removed when the deploy ends
  return {
    flags: ["--config", await writeConfigWithDatabaseId(worker, db, uuid, dir)],
    note: `${created ? "created" : "found"} D1 database ${db.database_name} (${uuid})`,
  };
}
