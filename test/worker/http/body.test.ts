// The capped body reader: whole bodies, the cap enforced while reading, and a timeout that cuts a
// body off mid-stream is a failure, never a shorter body.
import { describe, expect, it } from "vitest";
import { BodyTooLargeError, readBytesCapped, readCapped } from "../../../src/http/capped-body";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Sends the chunks, then stays open (a server that stops sending mid-body) unless `close`. */
function streamOf(chunks: string[], close: boolean): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      if (close) controller.close();
    },
  });
}

describe("readBytesCapped", () => {
  it("returns the whole body, and an empty one for no body", async () => {
    expect(decoder.decode(await readBytesCapped(streamOf(['{"keys"', ":[]}"], true), 100))).toBe('{"keys":[]}');
    expect(await readBytesCapped(null, 100)).toEqual(new Uint8Array(0));
  });

  it("gives undefined as soon as the body exceeds the cap", async () => {
    expect(await readBytesCapped(streamOf(["12345", "6"], false), 5)).toBeUndefined();
  });

  it("a body cut off by the signal is an error, not the part that arrived", async () => {
    const controller = new AbortController();
    const reading = readBytesCapped(streamOf(['{"keys":[{"kid":"a"}'], false), 100, controller.signal);
    setTimeout(() => controller.abort(), 20);
    await expect(reading).rejects.toThrow("aborted");
  });
});

describe("readCapped", () => {
  it("refuses a declared Content-Length over the cap without reading a byte, and cancels the body", async () => {
    let pulls = 0;
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          pulls++;
          controller.enqueue(encoder.encode("x"));
        },
        cancel() {
          cancelled = true;
        },
      },
      { highWaterMark: 0 },
    );
    const message = { headers: new Headers({ "Content-Length": "101" }), body } as unknown as Request;
    await expect(readCapped(message, 100)).rejects.toBeInstanceOf(BodyTooLargeError);
    expect({ pulls, cancelled }).toEqual({ pulls: 0, cancelled: true });
  });

  it("still counts the bytes of a body that declares less than it sends", async () => {
    const message = {
      headers: new Headers({ "Content-Length": "3" }),
      body: streamOf(["12345", "6"], true),
    } as unknown as Request;
    await expect(readCapped(message, 5)).rejects.toBeInstanceOf(BodyTooLargeError);
  });
});
