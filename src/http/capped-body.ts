// Reads a body stream with a byte cap enforced while reading: Content-Length is not trusted, and a
// body over the cap is cancelled rather than buffered. Shared by request parsing (routes), issuer
// fetches (issuer-keys/issuer-fetch.ts), upstream answers (providers/upstream-call.ts) and the CLI.

/** The body's bytes, or undefined when it is larger than `limit` (the stream is then cancelled). */
export async function readBytesCapped(
  body: ReadableStream<Uint8Array> | null,
  limit: number,
  signal?: AbortSignal,
): Promise<Uint8Array | undefined> {
  if (!body) return new Uint8Array(0);
  const reader = body.getReader();
  const onAbort = () => void reader.cancel().catch(() => {});
  signal?.addEventListener("abort", onAbort);
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      // Checked before `done`: cancelling on abort ends the stream, and a cut-off body is no body.
      if (signal?.aborted) throw new Error("aborted");
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel();
        return undefined;
      }
      chunks.push(value);
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

/** Reads a body as UTF-8, refusing it as soon as it exceeds `maxBytes`. */
export async function readCapped(message: Request | Response, maxBytes: number, signal?: AbortSignal): Promise<string> {
  const declared = Number(message.headers.get("Content-Length") ?? "0");
  if (declared > maxBytes) {
    await message.body?.cancel();
    throw new BodyTooLargeError(maxBytes);
  }
  const bytes = await readBytesCapped(message.body, maxBytes, signal);
  if (!bytes) throw new BodyTooLargeError(maxBytes);
  return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
}

export class BodyTooLargeError extends Error {
  constructor(readonly maxBytes: number) {
    super(`body larger than ${maxBytes} bytes`);
    this.name = "BodyTooLargeError";
  }
}
