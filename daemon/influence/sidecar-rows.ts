/**
 * Side-car worker batches in the engine's preparation (docs/wire.md, "Side-car attribution"):
 * each row names the job it answers, and only rows whose jobs are still open are scored, logged
 * and applied. The check and the removal of the jobs' rows from the store happen in the group's
 * preparation and commit, so a job is counted once however often workers resend (daemon/store/jobs.ts).
 */
import type { AnswerPlan, RunState, Store } from '../store/index.js';
import type { BatchSubmission } from './engine-types.js';
import { dtypeBytes } from './sketch-decode.js';

/** An engine queue item as far as the claim is concerned. */
interface ClaimItem {
  sub: BatchSubmission;
  reject: (e: unknown) => void;
}

/**
 * Claims the open jobs a worker batch answers. Returns the plan (the item's submission cut to
 * the rows of open jobs where some were answered already), undefined when every job was answered
 * already (a duplicate: acknowledged, not counted), or 'rejected' when a row does not match its job.
 */
export function claimRows(store: Store, run: RunState, item: ClaimItem): AnswerPlan | undefined | 'rejected' {
  const sub = item.sub;
  const jobIds = sub.jobIds ?? [];
  let claimed;
  try {
    claimed = store.jobs.claimAnswers(run.info.id, sub.step, sub.lr, sub.snapshotStep ?? sub.step, sub.sampleIds, jobIds);
  } catch (err) {
    item.reject(err);
    return 'rejected';
  }
  if (claimed.plan.jobIds.length === 0) return undefined;
  if (claimed.plan.jobIds.length < jobIds.length) item.sub = cutRows(sub, claimed.keep, run.info.dim);
  return claimed.plan;
}

/** Opens again the jobs of worker batches rejected while their group was prepared. */
export function releaseClaims(
  store: Store,
  claims: ReadonlyMap<unknown, AnswerPlan>,
  items: ReadonlyArray<{ readonly item: unknown; readonly rejected?: boolean }>,
): void {
  if (claims.size === 0) return;
  const live = new Set(items.filter((p) => p.rejected !== true).map((p) => p.item));
  for (const [item, plan] of claims) if (!live.has(item)) store.jobs.unclaim(plan);
}

/** The submission with only the rows `keep` marks: ids, job ids, sketches, wire bytes, features. */
export function cutRows(sub: BatchSubmission, keep: readonly boolean[], k: number): BatchSubmission {
  const n = sub.sampleIds.length;
  const rows: number[] = [];
  for (let i = 0; i < n; i++) if (keep[i] === true) rows.push(i);
  const rowBytes = k * dtypeBytes(sub.wireDtype);
  const sketches = new Float32Array(rows.length * k);
  const wire = new Uint8Array(rows.length * rowBytes);
  const nf = sub.features === undefined ? 0 : sub.features.length / n;
  const features = sub.features === undefined ? undefined : new Float32Array(rows.length * nf);
  rows.forEach((r, i) => {
    sketches.set(sub.sketches.subarray(r * k, (r + 1) * k), i * k);
    wire.set(sub.wire.subarray(r * rowBytes, (r + 1) * rowBytes), i * rowBytes);
    if (features !== undefined && sub.features !== undefined) features.set(sub.features.subarray(r * nf, (r + 1) * nf), i * nf);
  });
  const jobIds = sub.jobIds ?? [];
  return {
    ...sub,
    sampleIds: rows.map((r) => sub.sampleIds[r] as string),
    jobIds: rows.map((r) => jobIds[r] as number),
    sketches,
    wire,
    features,
    bytes: Math.round((sub.bytes * rows.length) / n),
  };
}
