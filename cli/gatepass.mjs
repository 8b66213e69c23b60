#!/usr/bin/env node
// `npx gatepass ...`: runs the TypeScript CLI through tsx (Node 20 cannot run TypeScript itself).
import { register } from "tsx/esm/api";

register();
await import("./main.ts");
