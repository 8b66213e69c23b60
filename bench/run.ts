// `npm run bench [section...]`: runs every benchmark section (or the named ones), one after another.
// A section is a module in bench/ exporting `run(): Promise<void>` that prints its own numbers.
export {};

const sections: Record<string, () => Promise<{ run(): Promise<void> }>> = {
  bundle: () => import("./bundle"),
  cli: () => import("./cli"),
  verify: () => import("./verify"),
  refusals: () => import("./refusals"),
  policy: () => import("./policy"),
  exchange: () => import("./exchange"),
  throughput: () => import("./throughput"),
  cpu: () => import("./cpu"),
  "refusal-cost": () => import("./refusal-cost"),
  "audit-flood": () => import("./audit-flood"),
  plan: () => import("./plan"),
};

const wanted = process.argv.slice(2);
const unknown = wanted.filter((name) => !(name in sections));
if (unknown.length > 0) {
  console.error(`unknown bench section(s): ${unknown.join(", ")}; available: ${Object.keys(sections).join(", ")}`);
  process.exit(2);
}
for (const name of wanted.length > 0 ? wanted : Object.keys(sections)) {
  console.log(`\n== ${name} ==`);
  await (await sections[name]!()).run();
}
