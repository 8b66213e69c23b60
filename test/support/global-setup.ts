// Runs in Node before the worker tests: starts the loopback stand-ins and tells the tests where, and
// hides workerd's log of the connections they drop on purpose (see workerd-logs.ts).
import type { TestProject } from "vitest/node";
import { startStandins } from "./standins";
import { issuerHandler } from "./standins/issuer";
import { upstreamsHandler } from "./standins/upstreams";
import { hideDroppedConnectionLogs } from "./workerd-logs";

export default async function setup(project: TestProject) {
  const showLogs = hideDroppedConnectionLogs();
  const standins = await startStandins([upstreamsHandler, issuerHandler]);
  project.provide("standinUrl", standins.url);
  return async () => {
    await standins.close();
    showLogs();
  };
}

declare module "vitest" {
  export interface ProvidedContext {
    standinUrl: string;
  }
}
