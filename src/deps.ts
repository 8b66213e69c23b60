// The outside world, injectable: tests pass their own fetch and clock.

export interface Deps {
  fetch: typeof fetch;
  /** Milliseconds since the epoch. */
  now: () => number;
}

export const defaultDeps: Deps = {
  fetch: (input, init) => fetch(input, init),
  now: () => Date.now(),
};

/** Keeps a request's isolate alive until the promise settles (ExecutionContext.waitUntil in a Worker). */
export type WaitUntil = (promise: Promise<unknown>) => void;

export const nowSeconds = (deps: Pick<Deps, "now">): number => Math.floor(deps.now() / 1000);
