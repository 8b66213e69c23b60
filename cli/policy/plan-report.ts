// How `policies plan` and `policies diff` say what they found: text for a terminal, Markdown for a
// merge request comment or job summary, JSON for tools. One plan, three renderings.

import type { FieldChange, PolicyDiff } from "./policy-diff";
import type { ReplayResult, TargetChange } from "./policy-replay";

export interface Plan {
  before: { version: string; label: string };
  after: { version: string; label: string };
  diff: PolicyDiff;
  /** Absent when no replay ran (policies diff, or plan --no-replay). */
  replay?: ReplayResult & { days: number };
}

/** Groups shown per target and direction before "… and N more" (JSON lists them all). */
const SHOWN_GROUPS = 20;

export function planJson(plan: Plan): string {
  return JSON.stringify(plan, null, 2);
}

export function planText(plan: Plan): string {
  const lines: string[] = [`policy plan: ${short(plan.before)} → ${short(plan.after)}`];
  const { diff } = plan;
  if (diff.issuers.length === 0 && diff.targets.length === 0) lines.push("", "no changes to issuers, targets or rules");
  for (const issuer of diff.issuers) {
    lines.push("", `issuer ${issuer.issuer}: ${issuer.kind}`);
    for (const field of issuer.fields) lines.push(`  ${fieldLine(field)}`);
  }
  for (const target of diff.targets) {
    lines.push(
      "",
      `target ${target.target}${target.privileged ? " (privileged)" : ""}${target.kind ? `: ${target.kind}` : ""}`,
    );
    for (const field of target.fields) lines.push(`  ${fieldLine(field)}`);
    for (const rule of target.rules) {
      lines.push(`  rule ${rule.rule}: ${rule.kind}`);
      for (const field of rule.fields) lines.push(`    ${fieldLine(field)}`);
    }
    for (const reach of target.newlyReachable)
      lines.push(`  NEWLY REACHABLE by rule ${reach.rule} (issuer ${reach.issuer}; ${reach.scope})`);
  }
  if (diff.lint.gained.length + diff.lint.lost.length > 0) {
    lines.push("", "lint");
    for (const line of diff.lint.gained) lines.push(`  + ${line}`);
    for (const line of diff.lint.lost) lines.push(`  - ${line}`);
  }
  if (plan.replay) lines.push("", ...replayText(plan.replay));
  return lines.join("\n");
}

function replayText(replay: NonNullable<Plan["replay"]>): string[] {
  const lines = [
    `replay: ${replay.identities} identities seen in the last ${replay.days} days; ` +
      `${replay.changed} with a changed decision, ${replay.unchanged} unchanged`,
  ];
  if (replay.unjudgedRules.length > 0) lines.push(`  ${unjudged(replay.unjudgedRules)}`);
  for (const change of replay.changes) {
    lines.push(
      `  ${change.target}: ${arrow(change)} for ${change.identities} identities (${change.requests} requests)`,
    );
    for (const group of change.groups.slice(0, SHOWN_GROUPS)) {
      lines.push(
        `    ${group.namespace} / ${group.project}: ${group.identities} identities, ${group.requests} requests; ` +
          `e.g. ${example(group.example)}`,
      );
    }
    if (change.groups.length > SHOWN_GROUPS)
      lines.push(`    … and ${change.groups.length - SHOWN_GROUPS} more projects (--json lists them all)`);
  }
  return lines;
}

export function planMarkdown(plan: Plan): string {
  const { diff } = plan;
  const lines: string[] = [`### gatepass policy plan`, "", `\`${short(plan.before)}\` → \`${short(plan.after)}\``, ""];
  if (plan.replay) {
    const { replay } = plan;
    lines.push(
      replay.changed === 0
        ? `**No decision changes** for the ${replay.identities} identities seen in the last ${replay.days} days.`
        : `**${replay.changed} of ${replay.identities} identities** seen in the last ${replay.days} days get a ` +
            `different decision.`,
      "",
    );
    if (replay.unjudgedRules.length > 0) lines.push(`> ${cell(unjudged(replay.unjudgedRules))}`, "");
    if (replay.changes.length > 0) {
      lines.push(
        "| target | change | identities | requests | projects (namespace / project: identities, e.g.) |",
        "|---|---|---|---|---|",
      );
      for (const change of replay.changes) {
        const groups = change.groups
          .slice(0, SHOWN_GROUPS)
          .map((g) => `${cell(g.namespace)} / ${cell(g.project)}: ${g.identities}, e.g. ${cell(example(g.example))}`);
        if (change.groups.length > SHOWN_GROUPS) groups.push(`… and ${change.groups.length - SHOWN_GROUPS} more`);
        lines.push(
          `| \`${change.target}\` | ${arrow(change)} | ${change.identities} | ${change.requests} | ${groups.join("<br>")} |`,
        );
      }
      lines.push("");
    }
  }
  const reaches = diff.targets.flatMap((t) => t.newlyReachable.map((r) => ({ target: t.target, ...r })));
  if (reaches.length > 0) {
    lines.push("**Privileged targets newly reachable**", "", "| target | rule | issuer | scope |", "|---|---|---|---|");
    for (const r of reaches)
      lines.push(`| \`${r.target}\` | \`${cell(r.rule)}\` | ${cell(r.issuer)} | ${cell(r.scope)} |`);
    lines.push("");
  }
  if (diff.issuers.length + diff.targets.length === 0) lines.push("No changes to issuers, targets or rules.", "");
  else {
    lines.push(
      "<details><summary>Changes by target</summary>",
      "",
      "```",
      ...planText({ ...plan, replay: undefined })
        .split("\n")
        .slice(2),
      "```",
      "",
      "</details>",
      "",
    );
  }
  if (diff.lint.gained.length + diff.lint.lost.length > 0) {
    lines.push(
      "**Lint**",
      "",
      ...diff.lint.gained.map((l) => `- gained: ${cell(l)}`),
      ...diff.lint.lost.map((l) => `- lost: ${cell(l)}`),
      "",
    );
  }
  return lines.join("\n");
}

function unjudged(rules: readonly string[]): string {
  return (
    `note: rules ${rules.join(", ")} name claims replay does not keep (per-job ids, times, commit hashes): ` +
    `replayed as if missing`
  );
}

function short(side: Plan["before"]): string {
  return `${side.label} ${side.version.slice(0, 12)}`;
}

function arrow(change: TargetChange): string {
  return change.direction === "allow_to_deny" ? "allow → deny" : "deny → allow";
}

function example(claims: Record<string, string>): string {
  return Object.entries(claims)
    .map(([claim, value]) => `${claim}=${value}`)
    .join(" ");
}

function fieldLine(field: FieldChange): string {
  const show = (value: unknown) => (value === undefined ? "(absent)" : JSON.stringify(value));
  return `${field.field}: ${show(field.before)} → ${show(field.after)}`;
}

/** Text safe inside a Markdown table cell: no pipes, no newlines, no HTML. */
function cell(text: string): string {
  return text.replace(
    /[|\n\r<>`]/g,
    (c) => ({ "|": "\\|", "\n": " ", "\r": " ", "<": "&lt;", ">": "&gt;", "`": "'" })[c]!,
  );
}
