// Runs in Node before the worker tests: starts the loopback stand-ins and tells the tests where.
import type { TestProject } from "vitest/node";
import { startStandins } from "./standins";
import { issuerHandler } from "./standins/issuer";
import { upstreamsHandler } from "./standins/upstreams";

export default async function setup(project: TestProject) {
  const standins = await startStandins([upstreamsHandler, issuerHandler]);
  project.provide("standinUrl", standins.url);
  return async () => standins.close();
}

declare module "vitest" {
  export interface ProvidedContext {
    standinUrl: string;
  }
}
