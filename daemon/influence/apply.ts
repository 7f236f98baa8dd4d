/**
 * After a group's commit, on the write path (docs/architecture.md, "Invariants": acknowledged
 * means durable, memory follows the log): the batches waiting for durability hear first
 * (`tellDurable`), then, on the next turn of the event loop, the group is applied to memory in
 * commit order exactly as recovery replays the log (`applyGroup`), its submissions resolve, and
 * the commit listeners and the `motive:engine:commit` channel's subscribers hear what changed.
 */
import { trace, type Logger } from '../shared/index.js';
import type { QuerySetRecord, RunState, Store } from '../store/index.js';
import type { BatchWeigher, CommitEvent } from './engine-types.js';
import type { SketchBuffers } from './sketch-decode.js';
import { engineCommitChannel } from './channels.js';
import {
  appliesSamples,
  type Ahead,
  type GroupLsns,
  type GroupWeights,
  type Prepared,
  type PreparedBatch,
  type PreparedGroup,
} from './write-state.js';

export interface ApplyContext {
  readonly store: Store;
  readonly ahead: Ahead;
  readonly sketchBuffers: SketchBuffers;
  readonly weigher: BatchWeigher | undefined;
  readonly listeners: ReadonlyArray<(e: CommitEvent) => void>;
  readonly log: Logger;
  /** The engine, named in what it publishes (channels.ts). */
  readonly source: object;
}

/** A group just committed, and when. */
export interface CommittedGroup {
  readonly group: PreparedGroup;
  /** Its items not rejected while prepared: what the commit wrote. */
  readonly live: readonly Prepared[];
  readonly lsns: GroupLsns;
  /** performance.now() when the commit was asked for, its transaction began, and it was durable. */
  readonly startedAt: number;
  readonly txAt: number;
  readonly durableAt: number;
  /** Whether the trainers heard of it (and of its batch weights) before the apply. */
  readonly trainersTold: boolean;
}

/** A run's share of a commit event, summed while the group is applied. */
interface RunEvent {
  batches: number;
  sketches: number;
  bytes: number;
  readonly qs: QuerySetRecord[];
  readonly ids: Array<readonly string[]>;
  readonly waitMs: number[];
}

/**
 * Durable now: calls the `durable` callbacks of the group's batches (ingest's Acks) and, where
 * there were any, hands the batch weights to the weigher to go out after them on each stream.
 * Returns whether any trainer was told.
 */
export function tellDurable(
  ctx: ApplyContext,
  group: PreparedGroup,
  live: readonly Prepared[],
  lsns: GroupLsns,
  txAt: number,
  now: number,
): boolean {
  let trainersTold = false;
  for (const p of live) {
    if (p.kind === 'queries') continue;
    if (trace.on && !p.duplicate)
      trace.event('batch', p.item.sub.rank, p.item.sub.seq, p.item.at, group.takenAt, group.preparedAt, txAt, now);
    if (p.item.durable === undefined) continue;
    trainersTold = true;
    try {
      p.item.durable(p.duplicate ? 'duplicate' : 'committed');
    } catch (err) {
      ctx.log.error({ err }, 'durable callback failed');
    }
  }
  // The batch weights go out with the Acks, after them on each stream.
  if (trainersTold && ctx.weigher !== undefined)
    for (const [run, w] of lsns.weights) {
      const weights = group.weights.get(run) as GroupWeights;
      ctx.weigher.durable(run, w.version, weights.ids, weights.weights);
    }
  return trainersTold;
}

/** Applies a committed group to memory, resolves its items and tells the listeners. */
export function applyGroup(ctx: ApplyContext, c: CommittedGroup): void {
  const applyStart = performance.now();
  const { group, live } = c;
  const events = new Map<string, RunEvent>();
  for (const [run, ids] of group.newQueryIds) {
    for (const id of ids) run.queryColumn(id);
    ctx.ahead.appliedQueryIds(run, ids.length);
  }
  for (const p of live) {
    let ev = events.get(p.run.info.id);
    if (ev === undefined) events.set(p.run.info.id, (ev = { batches: 0, sketches: 0, bytes: 0, qs: [], ids: [], waitMs: [] }));
    p.run.revision++;
    if (p.kind === 'queries') {
      if (p.record === undefined) continue;
      p.run.addQuerySet(p.record);
      ctx.ahead.appliedQuerySet(p.run, p.record);
      ev.qs.push(p.record);
    } else if (applyBatch(ctx, p, c.lsns)) {
      const sub = p.item.sub;
      ev.batches++;
      ev.sketches += sub.sampleIds.length;
      ev.ids.push(sub.sampleIds);
      ev.bytes += sub.bytes;
      ev.waitMs.push(group.takenAt - p.item.at);
    }
  }
  for (const [run, w] of c.lsns.weights) {
    const weights = group.weights.get(run) as GroupWeights;
    ctx.store.applyWeights(run, weights.ids, weights.weights, w.lsn);
    if (w.version > run.weightsVersion) run.weightsVersion = w.version;
    run.revision++;
  }
  // The group's own projections, found through its batches' ids: the map also holds the
  // projections of every group prepared after it, and walking all of it per group cost 5 % of
  // the main thread at 32 batches in flight.
  for (const p of live) if (appliesSamples(p)) ctx.ahead.appliedProjections(p.run, p.item.sub.sampleIds, group.id);
  const applyMs = performance.now() - applyStart;
  for (const p of live)
    p.item.resolve(p.kind === 'queries' ? (p.record === undefined ? 'duplicate' : 'committed') : p.duplicate ? 'duplicate' : 'committed');
  announceWeights(ctx, c);
  emitEvents(ctx, c, events, applyMs);
}

/**
 * One batch: its samples (G(z), S_j, seen), features, commit marker or answered jobs, and the
 * run's counters; gives its buffers back. Returns whether it counted (not a duplicate or a report).
 */
function applyBatch(ctx: ApplyContext, p: PreparedBatch, lsns: GroupLsns): boolean {
  const sub = p.item.sub;
  const run = p.run;
  if (p.duplicate) {
    ctx.sketchBuffers.give(sub.sketches);
    ctx.sketchBuffers.giveBytes(sub.wire);
    return false;
  }
  if (p.report !== undefined) {
    ctx.store.jobs.applyReport(p.report);
    run.commits.set(sub.rank, sub.seq);
    ctx.ahead.appliedSeq(sub.runId, sub.rank, sub.seq);
    return false;
  }
  const batch = { sampleIds: sub.sampleIds, step: sub.step, lr: sub.lr, sketches: sub.sketches };
  ctx.store.applyBatch(run, { ...batch, querySet: p.querySet, products: p.products, samples: p.samples }, lsns.batches.get(p) as number);
  ctx.sketchBuffers.give(sub.sketches);
  ctx.sketchBuffers.giveBytes(sub.wire);
  if (sub.features !== undefined && sub.features.length === sub.sampleIds.length * run.features.width)
    run.features.setRows(sub.sampleIds, sub.features);
  if (p.answer !== undefined) ctx.store.jobs.applyAnswer(p.answer);
  else {
    run.commits.set(sub.rank, sub.seq);
    ctx.ahead.appliedSeq(sub.runId, sub.rank, sub.seq);
  }
  ctx.ahead.appliedSamples(run, sub.sampleIds, p.samples);
  run.batches++;
  run.sketches += sub.sampleIds.length;
  if (sub.step > run.lastStep) run.lastStep = sub.step;
  return true;
}

/** The group's batch weights, applied now, announced to the weigher. */
function announceWeights(ctx: ApplyContext, c: CommittedGroup): void {
  const weigher = ctx.weigher;
  if (c.lsns.weights.size === 0 || weigher === undefined) return;
  // Queued after the resolutions, so each batch's Ack is written to its stream before the
  // WeightUpdate that carries its weights (where the trainers did not have them with the Acks
  // already; the live feed and metrics hear of them here, applied).
  queueMicrotask(() => {
    for (const [run, w] of c.lsns.weights) {
      const weights = c.group.weights.get(run) as GroupWeights;
      weigher.announce(run, w.version, weights.ids, weights.weights, weights.newly, c.trainersTold);
    }
  });
}

/** One commit event per run the group changed, to every listener. */
function emitEvents(ctx: ApplyContext, c: CommittedGroup, events: ReadonlyMap<string, RunEvent>, applyMs: number): void {
  const { group } = c;
  for (const [runId, ev] of events) {
    if (ev.batches === 0 && ev.qs.length === 0) continue;
    const run: RunState | undefined = ctx.store.run(runId);
    const event: CommitEvent = {
      runId,
      batches: ev.batches,
      sketches: ev.sketches,
      bytes: ev.bytes,
      lastStep: run?.lastStep ?? 0,
      querySets: ev.qs,
      sampleIds: ev.ids,
      commitMs: c.durableAt - c.startedAt,
      stages: {
        waitMs: ev.waitMs,
        scoreMs: group.preparedAt - group.takenAt,
        queuedMs: c.txAt - group.preparedAt,
        durableMs: c.durableAt - c.txAt,
        applyMs,
      },
    };
    for (const l of ctx.listeners) {
      try {
        l(event);
      } catch (err) {
        ctx.log.error({ err }, 'commit listener failed');
      }
    }
    if (engineCommitChannel.hasSubscribers) engineCommitChannel.publish({ engine: ctx.source, event });
  }
}
