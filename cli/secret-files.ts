// The operator's secret files (`gatepass deploy --secrets-dir`): a file found there is uploaded to
// Cloudflare as the Worker's admin token or signing keys, so it must be one only its owner could have
// put there. Refused, each with the command that fixes it: a directory others may write to (anyone could
// have planted a token of their own, or swap a file between our check and our read), a file not owned
// by the user or with a mode other than 0600, and a symbolic link (it could point anywhere).

import { constants } from "node:fs";
import { lstat, open } from "node:fs/promises";
import { shellWord } from "./shell-word";

export class SecretFileError extends Error {}

const uid = () => process.getuid?.();

/** Throws SecretFileError unless dir is a directory owned by the user (or root) that no one else may write to. */
export async function checkSecretDir(dir: string): Promise<void> {
  const info = await lstat(dir);
  if (info.isSymbolicLink()) {
    throw new SecretFileError(
      `${dir} is a symbolic link; give the real directory to --secrets-dir (${shellWord(dir)} points elsewhere)`,
    );
  }
  if (!info.isDirectory()) throw new SecretFileError(`${dir} is not a directory`);
  const me = uid();
  if (me !== undefined && info.uid !== me && info.uid !== 0) {
    throw new SecretFileError(
      `${dir} belongs to another user (uid ${info.uid}); keep secrets in a directory of your own: mkdir -m 700 DIR ` +
        `and give --secrets-dir DIR`,
    );
  }
  if ((info.mode & 0o022) !== 0) {
    throw new SecretFileError(
      `${dir} may be written by other users (mode ${octal(info.mode)}), who could have put a secret of their own ` +
        `there; ` +
        `run: chmod go-w ${shellWord(dir)} (and check its files are yours)`,
    );
  }
}

/**
 * The text of a secret file that only its owner (the user) may read or write, read through a handle
 * opened without following links, so what is checked is what is read. Undefined when it does not exist.
 */
export async function readOwnSecretFile(file: string): Promise<string | undefined> {
  let handle;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP") {
      throw new SecretFileError(
        `${file} is a symbolic link, not a file of your own; remove it so a new secret is generated: rm ` +
          `${shellWord(file)}`,
      );
    }
    throw err;
  }
  try {
    const info = await handle.stat();
    if (!info.isFile())
      throw new SecretFileError(
        `${file} is not a regular file; remove it so a new secret is generated: rm ${shellWord(file)}`,
      );
    const me = uid();
    if (me !== undefined && info.uid !== me) {
      throw new SecretFileError(
        `${file} belongs to another user (uid ${info.uid}), who could have chosen its secret; remove it so a new ` +
          `one is generated: rm ${shellWord(file)}`,
      );
    }
    if ((info.mode & 0o777) !== 0o600) {
      throw new SecretFileError(
        `${file} has mode ${octal(info.mode)}, not 0600 (readable or writable by others); if you made it, run: ` +
          `chmod 600 ${shellWord(file)}; if not, rm ${shellWord(file)}`,
      );
    }
    return await handle.readFile("utf8");
  } finally {
    await handle.close();
  }
}

function octal(mode: number): string {
  return `0${(mode & 0o777).toString(8).padStart(3, "0")}`;
}
