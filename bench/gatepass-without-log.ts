// gatepass with its info-level log lines discarded, for `npm run bench -- throughput` only (never
// deployed; gatepass must log every request). Under `wrangler dev` each `console` call costs far
// more than in production, so the bench runs this beside gatepass to show that cost apart from what
// gatepass itself does. Warnings and errors still go out.
import gatepass from "../src/index";

console.log = () => {};

export default gatepass;
