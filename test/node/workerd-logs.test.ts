// The filter that keeps a green worker run quiet drops only workerd's report of a dropped connection.
import { describe, expect, it } from "vitest";
import { isDroppedConnectionLog } from "../support/workerd-logs";

const STACK =
  "stack: /repo/node_modules/@cloudflare/workerd-linux-64/bin/workerd@51ccf21 /repo/node_modules/@cloudflare/workerd-linux-64/bin/workerd@51cd135";

describe("isDroppedConnectionLog", () => {
  it("drops the three messages workerd prints for a connection a stand-in closed", () => {
    expect(
      isDroppedConnectionLog(
        `exception = kj/async-io.c++:60: disconnected: stream disconnected prematurely\n${STACK}\n`,
      ),
    ).toBe(true);
    expect(
      isDroppedConnectionLog(`exception = kj/async-io.c++:669: disconnected: read end of pipe was aborted\n${STACK}\n`),
    ).toBe(true);
    expect(
      isDroppedConnectionLog(
        "uncaught exception; source = Uncaught (in promise); stack = Error: Network connection lost.\n",
      ),
    ).toBe(true);
    expect(
      isDroppedConnectionLog(
        `uncaught exception; exception = workerd/jsg/_virtual_includes/iterator/workerd/jsg/value.h:1480: disconnected: jsg.Error: Network connection lost.\n${STACK}\n`,
      ),
    ).toBe(true);
  });

  it("keeps every other message: other uncaught errors, the Worker's own logs, a stack alone, test output", () => {
    expect(
      isDroppedConnectionLog(
        "uncaught exception; source = Uncaught (in promise); stack = TypeError: x is undefined\n    at handler (index.js:1:1)\n",
      ),
    ).toBe(false);
    expect(
      isDroppedConnectionLog(
        "uncaught exception; source = Uncaught (in promise); stack = Error: Network connection lost.\nsomething else\n",
      ),
    ).toBe(false);
    expect(
      isDroppedConnectionLog('{"level":"error","event":"upstream_retry","reason":"Network connection lost."}\n'),
    ).toBe(false);
    expect(isDroppedConnectionLog(`${STACK}\n`)).toBe(false);
    expect(isDroppedConnectionLog(" ✓ worker test/worker/faults.test.ts (3 tests) 442ms\n")).toBe(false);
    expect(isDroppedConnectionLog("")).toBe(false);
  });
});
