// What `gatepass deploy` (cli/commands/deploy.ts) runs: a list of steps, each able to say how it is done by hand.

export interface Step {
  title: string;
  /** Does the step; returns what it did, in a few words. */
  run(): Promise<string>;
  /** The same step by hand, for the operator who wants it. */
  byHand(): string;
}

/** A step that cannot go on, with the reason the operator can act on. */
export class StepFailure extends Error {}
