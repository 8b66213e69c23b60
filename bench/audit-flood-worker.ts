// gatepass with its audit inserts slowed down, for `npm run bench -- audit-flood` only (never
// deployed). One client process on the bench machine cannot send requests faster than local D1 takes
// their audit rows, so the queue would never fill; a D1 that answers each audit insert only after
// AUDIT_FLOOD_D1_DELAY_MS (as a slow or overloaded D1 would) shows the queue at its caps.
import gatepass from "../src/index";
import type { Env } from "../src/config";

type BenchEnv = Env & { AUDIT_FLOOD_D1_DELAY_MS?: string };

const slowed = new WeakMap<BenchEnv, Env>();

function slowAuditInserts(env: BenchEnv): Env {
  let wrapped = slowed.get(env);
  if (!wrapped) {
    const delayMs = Number(env.AUDIT_FLOOD_D1_DELAY_MS ?? 0);
    const db = env.DB;
    const prepare = (sql: string) => {
      const statement = db.prepare(sql);
      if (delayMs <= 0 || !sql.startsWith("INSERT INTO audit_events")) return statement;
      return {
        bind: (...values: unknown[]) => {
          const bound = statement.bind(...values);
          return { run: async () => (await new Promise((resolve) => setTimeout(resolve, delayMs)), bound.run()) };
        },
      };
    };
    wrapped = { ...env, DB: { prepare } as unknown as D1Database };
    slowed.set(env, wrapped);
  }
  return wrapped;
}

export default {
  fetch: (request: Request, env: BenchEnv, ctx: ExecutionContext) =>
    gatepass.fetch(request, slowAuditInserts(env), ctx),
};
