// `gatepass keys rotate --remote`, in process with wrangler replaced: the operator's copy of the secret
// is replaced only after `wrangler secret put` succeeded, and never when it failed.
// (keys-cli.test.ts runs the real CLI against a wrangler that cannot log in.)
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { run } from "../../cli/commands/keys";
import { wrangler } from "../../cli/wrangler";
import { parseSigningKeySecret } from "../../src/signing-keys/signing-key-secret";
import { generateSecret, serializeSecret } from "../../src/signing-keys/signing-key-rotation";

vi.mock("../../cli/wrangler", () => ({ wrangler: vi.fn() }));
const upload = vi.mocked(wrangler);

let dir: string;
let file: string;
let original: string;
let stdout: string;
let stderr: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "gatepass-rotate-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  file = path.join(dir, "secret.json");
  // Keys made an hour ago: old enough to rotate without --force.
  original = `${serializeSecret(await generateSecret(["ES256"], Math.floor(Date.now() / 1000) - 3600))}\n`;
  await writeFile(file, original, { mode: 0o600 });
  stdout = "";
  stderr = "";
  vi.spyOn(process.stdout, "write").mockImplementation((chunk) => ((stdout += String(chunk)), true));
  vi.spyOn(process.stderr, "write").mockImplementation((chunk) => ((stderr += String(chunk)), true));
});
afterEach(() => {
  vi.restoreAllMocks();
  upload.mockReset();
});

const leftovers = async () => (await readdir(dir)).filter((name) => name !== "secret.json");

describe("keys rotate --remote", () => {
  it("sets the rotated secret first and only then writes --out (here: the --from file)", async () => {
    let fileDuringUpload: string | undefined;
    let uploaded: string | undefined;
    upload.mockImplementation(async (_args, options) => {
      fileDuringUpload = await readFile(file, "utf8");
      uploaded = options?.input;
      return "";
    });
    expect(await run(["rotate", "--remote", "--from", file, "--out", file, "--env", "production"])).toBe(0);
    expect(upload).toHaveBeenCalledWith(
      ["secret", "put", "GATEPASS_SIGNING_KEYS", "--env", "production"],
      expect.anything(),
    );
    expect(fileDuringUpload).toBe(original);
    expect(await readFile(file, "utf8")).toBe(`${uploaded}\n`);
    const before = parseSigningKeySecret(original).keys;
    const after = parseSigningKeySecret(uploaded!).keys;
    expect(after.find((k) => k.status === "current")!.kid).toBe(before.find((k) => k.status === "next")!.kid);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await leftovers()).toEqual([]);
    expect(stdout).toBe("");
  });

  it("leaves --from and --out untouched when the upload fails, and says so", async () => {
    const out = path.join(dir, "rotated.json");
    await writeFile(out, "the operator's older copy\n");
    upload.mockRejectedValue(new Error("wrangler secret put failed (exit 1):\nAuthentication error"));
    expect(await run(["rotate", "--remote", "--from", file, "--out", out])).toBe(1);
    expect(await readFile(file, "utf8")).toBe(original);
    expect(await readFile(out, "utf8")).toBe("the operator's older copy\n");
    expect(stderr).toContain("Authentication error");
    expect(stderr).toMatch(/no file was changed/);
    await rm(out);
    expect(await leftovers()).toEqual([]);
  });

  it("keys add sets the secret with the new algorithm's keys, the live ones unchanged, then writes --out", async () => {
    let uploaded: string | undefined;
    upload.mockImplementation(async (_args, options) => ((uploaded = options?.input), ""));
    expect(await run(["add", "--alg", "RS256", "--remote", "--from", file, "--out", file])).toBe(0);
    expect(upload).toHaveBeenCalledWith(["secret", "put", "GATEPASS_SIGNING_KEYS"], expect.anything());
    expect(await readFile(file, "utf8")).toBe(`${uploaded}\n`);
    const after = parseSigningKeySecret(uploaded!).keys;
    expect(after.filter((k) => k.alg === "ES256")).toEqual(parseSigningKeySecret(original).keys);
    expect(after.filter((k) => k.alg === "RS256")).toHaveLength(2);
    expect(stderr).toMatch(/added keys to GATEPASS_SIGNING_KEYS/);
  });

  it("without --out, prints the rotated secret only after the upload succeeded", async () => {
    let printedBeforeUpload: string | undefined;
    upload.mockImplementation(async () => ((printedBeforeUpload = stdout), ""));
    expect(await run(["rotate", "--remote", "--from", file])).toBe(0);
    expect(printedBeforeUpload).toBe("");
    expect(parseSigningKeySecret(stdout).keys).toHaveLength(3);

    stdout = "";
    upload.mockRejectedValue(new Error("wrangler secret put failed"));
    expect(await run(["rotate", "--remote", "--from", file])).toBe(1);
    expect(stdout).toBe("");
    expect(await readFile(file, "utf8")).toBe(original);
  });
});
