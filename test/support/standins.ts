// Loopback stand-ins for the outside world (issuer discovery/JWKS, cloud token services), built
// from the documented wire formats. Tests configure them over a small control API.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface Standins {
  url: string;
  close(): Promise<void>;
}

export async function startStandins(): Promise<Standins> {
  const server = createServer((req, res) => route(req, res));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function route(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === "/ping") {
    res.writeHead(200, { "Content-Type": "text/plain" }).end("pong");
    return;
  }
  res.writeHead(404).end();
}
