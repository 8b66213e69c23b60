// Loopback stand-ins for the outside world, one HTTP server for all of them, built from the
// documented wire formats (see standins/upstreams.ts). Each part handles its own path prefix:
//   /ping                 liveness
//   /issuer/...           OIDC issuers (discovery + JWKS), see standins/issuer.ts
//   /gcp/... /aws/... /azure/... /vault/...   cloud token services, see standins/upstreams.ts
// Tests configure a part over its `/_control` endpoints.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type StandinHandler = (req: IncomingMessage, res: ServerResponse, body: string) => boolean | Promise<boolean>;

export interface Standins {
  url: string;
  close(): Promise<void>;
}

const MAX_BODY = 1024 * 1024;

export async function startStandins(handlers: StandinHandler[] = []): Promise<Standins> {
  const server = createServer(async (req, res) => {
    try {
      const body = await readBody(req);
      if (req.url === "/ping") {
        res.writeHead(200, { "Content-Type": "text/plain" }).end("pong");
        return;
      }
      for (const handle of handlers) if (await handle(req, res, body)) return;
      res.writeHead(404, { "Content-Type": "application/json" }).end('{"error":"not_found"}');
    } catch (err) {
      if (!res.headersSent) res.writeHead(500).end(String(err));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) reject(new Error("body too large"));
      else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
