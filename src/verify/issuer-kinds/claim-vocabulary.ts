// What gatepass knows about an issuer's claims, whatever its kind: which claims scope a rule to a
// project and its owner (by id, never reused, or by path), which says a ref is protected, which marks
// a run that carries code or commands from outside (merge requests, forks, SSH reruns), and which are
// copied into minted tokens. Lint, explain and minting ask this module instead of naming GitLab's claims.

import { COPIED_CI_CLAIMS } from "../../mint/minted-token";
import type { IssuerConfig, IssuerProfile } from "../../types";
import { GITHUB_COPIED_CLAIMS, GITHUB_UNTRUSTED_EVENTS } from "./github-actions";

export interface ClaimVocabulary {
  /** How messages name the issuer's CI ("GitLab", "GitHub Actions", "profile buildkite"). */
  readonly ci: string;
  readonly projectId?: string;
  readonly projectPath?: string;
  readonly ownerId?: string;
  readonly ownerPath?: string;
  /** The claim and value that say the job runs on a protected ref; absent: the tokens cannot say. */
  readonly protectedRef?: { readonly claim: string; readonly value: string };
  /** The claim whose values mark runs of code or commands from outside the protected refs. */
  readonly untrusted?: {
    readonly claim: string;
    readonly values: readonly string[];
    readonly what: string;
    readonly example: string;
  };
  /** GitLab: `ref` is a bare name, so a tag can carry a branch's name (lint ref-without-ref-type). */
  readonly refNeedsRefType: boolean;
  /** GitLab: child pipelines run with pipeline_source parent_pipeline (lint privileged-child-pipelines). */
  readonly childPipelines: boolean;
  readonly copied: readonly string[];
}

const GITLAB: ClaimVocabulary = {
  ci: "GitLab",
  projectId: "project_id",
  projectPath: "project_path",
  ownerId: "namespace_id",
  ownerPath: "namespace_path",
  protectedRef: { claim: "ref_protected", value: "true" },
  untrusted: {
    claim: "pipeline_source",
    values: ["merge_request_event", "external_pull_request_event"],
    what: "merge-request pipelines (which can run a fork's code)",
    example: "pipeline_source: [push, web, schedule]",
  },
  refNeedsRefType: true,
  childPipelines: true,
  copied: COPIED_CI_CLAIMS,
};

const GITHUB: ClaimVocabulary = {
  ci: "GitHub Actions",
  projectId: "repository_id",
  projectPath: "repository",
  ownerId: "repository_owner_id",
  ownerPath: "repository_owner",
  protectedRef: { claim: "ref_protected", value: "true" },
  untrusted: {
    claim: "event_name",
    values: GITHUB_UNTRUSTED_EVENTS,
    what:
      "pull-request events (pull_request runs a fork's code; pull_request_target, workflow_run and " +
      "issue_comment run with the base repository's privileges on runs a fork can start)",
    example: "event_name: [push, workflow_dispatch, schedule]",
  },
  // GitHub's ref is the full refs/heads/… or refs/tags/…, so it names its type itself.
  refNeedsRefType: false,
  childPipelines: false,
  copied: GITHUB_COPIED_CLAIMS,
};

const byProfile = new WeakMap<IssuerProfile, ClaimVocabulary>();

function profileVocabulary(profile: IssuerProfile): ClaimVocabulary {
  let vocabulary = byProfile.get(profile);
  if (!vocabulary) {
    const { untrusted } = profile;
    vocabulary = {
      ci: profile.name ? `profile ${profile.name}` : "its profile",
      projectId: profile.project_id,
      ...(profile.project_path ? { projectPath: profile.project_path } : {}),
      ...(profile.owner_id ? { ownerId: profile.owner_id } : {}),
      ...(profile.owner_path ? { ownerPath: profile.owner_path } : {}),
      ...(profile.protected_ref ? { protectedRef: profile.protected_ref } : {}),
      ...(untrusted
        ? {
            untrusted: {
              ...untrusted,
              what: `runs the profile marks untrusted (${untrusted.claim}: ${untrusted.values.join(", ")})`,
              example: `${untrusted.claim}: { not: [${untrusted.values.join(", ")}] }`,
            },
          }
        : {}),
      refNeedsRefType: false,
      childPipelines: false,
      copied: profile.copy,
    };
    byProfile.set(profile, vocabulary);
  }
  return vocabulary;
}

/**
 * The vocabulary of `issuer`. A `kind: generic` issuer without a profile is read with GitLab's names,
 * as gatepass always has (its rules then need acknowledgements unless its tokens use those names).
 */
export function vocabularyOf(issuer: Pick<IssuerConfig, "kind" | "profile"> | undefined): ClaimVocabulary {
  if (issuer?.kind === "github") return GITHUB;
  if (issuer?.kind === "generic" && issuer.profile) return profileVocabulary(issuer.profile);
  return GITLAB;
}

/** The claims that scope a rule to projects, ids first. */
export function scopeClaims(vocabulary: ClaimVocabulary): string[] {
  return [vocabulary.projectId, vocabulary.projectPath, vocabulary.ownerId, vocabulary.ownerPath].filter(
    (claim): claim is string => claim !== undefined,
  );
}

/** The claims that scope by an id (never reused after a rename, transfer or deletion). */
export function idClaims(vocabulary: ClaimVocabulary): string[] {
  return [vocabulary.projectId, vocabulary.ownerId].filter((claim): claim is string => claim !== undefined);
}
