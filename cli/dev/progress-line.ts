// `gatepass dev`'s progress lines on stderr (stdout stays free: `dev token` prints only the token there).

export function step(message: string): void {
  process.stderr.write(`gatepass dev: ${message}\n`);
}
