// Keeps a green run quiet: drops workerd's log of a connection that a stand-in closed on purpose.
//
// When a fetch's connection drops (the stand-ins' `drop` fault, an issuer that stalls and is cut
// off), workerd logs it as "uncaught exception … Network connection lost" with native stack addresses,
// even though the Worker caught the fetch's rejection: a promise inside the runtime rejects with
// nobody observing it (a bare `fetch(url).catch(() => {})` in a test logs the same). The Workers pool
// writes each workerd log message to the main process's stdout in one write (handleStructuredLogs in
// @cloudflare/vitest-pool-workers, whose own ignore list does not cover these), so only messages made
// entirely of those lines are dropped. GATEPASS_TEST_WORKERD_LOGS=1 keeps them.

const DROPPED_CONNECTION_LINES = [
  /^exception = kj\/async-io\.c\+\+:\d+: disconnected: [\w ]+$/,
  /^uncaught exception; source = Uncaught \(in promise\); stack = Error: Network connection lost\.$/,
  /^uncaught exception; exception = workerd\/jsg\/[\w./-]+:\d+: disconnected: jsg\.Error: Network connection lost\.$/,
  /^stack:( \S+\/workerd@[0-9a-f]+)+$/,
];

/** True when every line of a workerd log message reports a dropped connection. */
export function isDroppedConnectionLog(message: string): boolean {
  const lines = message.split("\n").filter((line) => line !== "");
  return (
    lines.length > 0 &&
    lines.some((line) => !line.startsWith("stack:")) &&
    lines.every((line) => DROPPED_CONNECTION_LINES.some((re) => re.test(line)))
  );
}

/** Filters process.stdout until the returned function is called. */
export function hideDroppedConnectionLogs(): () => void {
  if (process.env.GATEPASS_TEST_WORKERD_LOGS === "1") return () => undefined;
  const write = process.stdout.write;
  process.stdout.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]) {
    if (typeof chunk === "string" && isDroppedConnectionLog(chunk)) {
      const callback = rest.find((arg) => typeof arg === "function") as (() => void) | undefined;
      callback?.();
      return true;
    }
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof process.stdout.write;
  return () => {
    process.stdout.write = write;
  };
}
