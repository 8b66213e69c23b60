// Bench Worker (run by bench/exchange.ts in local workerd, DevTools inspector off): runs N `oidc`
// exchanges per request through gatepass's own fetch handler, or N through the bare Worker, so Node
// can time them from outside (Workers' clocks stand still while they run).
//   POST /setup                    body: JSON array of CI tokens to cycle through
//   GET  /gatepass?n=N             N exchanges through gatepass (src/index.ts), each logging its line
//   GET  /gatepass?n=N&log=off     the same with console.log discarded for the loop
//   GET  /bare?n=N                 N exchanges through bench/bare-worker.ts
//   GET  /bare?n=N&log=on          the same, the bare Worker logging one line per exchange
//   GET  /hostile?kind=K&n=N       N refused requests through gatepass, each with a hostile body of
//                                  parameters (K = form: 3 000 form fields; json: 32 KiB of nested JSON)
import type { Env } from "../src/config";
import gatepass from "../src/index";
import bare from "./bare-worker";

type BenchEnv = Env & { CI_ISSUER: string; CI_PUBLIC_JWK: string; SIGNING_JWK: string };

let tokens: string[] = [];

/** Request bodies that cost parsing work before gatepass can refuse them (each under the 32 KiB cap). */
const HOSTILE_BODIES: Record<string, { type: string; text: string }> = {
  form: {
    type: "application/x-www-form-urlencoded",
    text: Array.from({ length: 3_000 }, (_, i) => `p${i}=1`).join("&"),
  },
  json: { type: "application/json", text: `{"a":${"[".repeat(16_000)}${"]".repeat(16_000)}}` },
};
let next = 0;

export default {
  async fetch(request: Request, env: BenchEnv, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return new Response("ok");
    if (url.pathname === "/setup" && request.method === "POST") {
      tokens = await request.json();
      return new Response(String(tokens.length));
    }
    const n = Number(url.searchParams.get("n") ?? "0");
    const exchange = (path: string) =>
      new Request(`${env.GATEPASS_ISSUER}${path}`, {
        method: "POST",
        headers: { Authorization: `Bearer ${tokens[next++ % tokens.length]}` },
      });
    const run = async (call: () => Response | Promise<Response>) => {
      for (let i = 0; i < n; i++) {
        const res = await call();
        const body = await res.text();
        if (res.status !== 200) return new Response(body, { status: 500 });
      }
      return new Response(String(n));
    };
    if (url.pathname === "/bare") {
      const bareEnv = { ...env, LOG_EACH_REQUEST: url.searchParams.get("log") === "on" ? "1" : "0" };
      return run(() => bare.fetch(exchange("/exchange"), bareEnv));
    }
    if (url.pathname === "/hostile") {
      const body = HOSTILE_BODIES[url.searchParams.get("kind") ?? ""];
      if (!body) return new Response("unknown kind", { status: 404 });
      for (let i = 0; i < n; i++) {
        const req = new Request(`${env.GATEPASS_ISSUER}/v1/credentials/oidc-rp`, {
          method: "POST",
          headers: { Authorization: `Bearer ${tokens[next++ % tokens.length]}`, "Content-Type": body.type },
          body: body.text,
        });
        const res = await gatepass.fetch(req, env, ctx);
        await res.text();
        if (res.status !== 400) return new Response(`expected 400, got ${res.status}`, { status: 500 });
      }
      return new Response(String(n));
    }
    if (url.pathname === "/gatepass") {
      const consoleLog = console.log;
      if (url.searchParams.get("log") === "off") console.log = () => {};
      try {
        return await run(() => gatepass.fetch(exchange("/v1/credentials/oidc-rp"), env, ctx));
      } finally {
        console.log = consoleLog;
      }
    }
    return new Response("not found", { status: 404 });
  },
} satisfies ExportedHandler<BenchEnv>;
