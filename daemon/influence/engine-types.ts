/**
 * What the influence engine takes and gives (docs/architecture.md, "The influence engine"): the
 * decoded submissions ingest queues, the commit events weighting, the live feed and metrics hear,
 * and the batch-weight interface the weighting service implements.
 */
import type { QuerySetRecord, RunState, SketchDType } from '../store/index.js';

/** A validated, decoded batch (docs/wire.md, SketchBatch). */
export interface BatchSubmission {
  readonly runId: string;
  readonly rank: number;
  readonly seq: number;
  readonly step: number;
  readonly lr: number;
  readonly sampleIds: readonly string[];
  /** [sampleIds.length × k] float32, raw (normalised here per the run's score mode) or `normalized`. */
  readonly sketches: Float32Array;
  /**
   * Already L2-normalised row by row (ingest decodes a cosine run's sketches that way, in one
   * pass); a cosine run's raw sketches are normalised in the group's preparation.
   */
  readonly normalized?: boolean;
  /** The sketch bytes as received: what the store logs. */
  readonly wire: Uint8Array;
  /** Per-sample features [sampleIds.length × the run's feature count], stored with the batch; undefined: none. */
  readonly features?: Float32Array | undefined;
  /**
   * The dtype of `wire`: the sending rank's, which may differ from the run's (ranks in mixed
   * precision); logged with the bytes so that recovery decodes them as ingest did.
   */
  readonly wireDtype: SketchDType;
  /** Wire bytes, for group sizing. */
  readonly bytes: number;
  /** A side-car report (docs/wire.md): no sketches; each sample becomes a job for the workers. */
  readonly deferred?: boolean;
  /** A side-car worker's batch: the job each row answers (deduplicated by job, not by rank and seq). */
  readonly jobIds?: readonly number[];
  /** A worker batch's parameter snapshot step (its staleness is `step − snapshotStep`). */
  readonly snapshotStep?: number;
}

/** A validated, decoded query set. */
export interface QuerySubmission {
  readonly runId: string;
  readonly version: number;
  readonly step: number;
  readonly ids: readonly string[];
  readonly groups: readonly string[];
  /** [ids.length × k] float32, raw. */
  readonly sketches: Float32Array;
  readonly bytes: number;
}

/** committed: counted now; duplicate: already counted earlier, not counted again. */
export type SubmitOutcome = 'committed' | 'duplicate';

/** What one group commit changed, for weighting, the live feed and metrics. */
export interface CommitEvent {
  readonly runId: string;
  readonly batches: number;
  readonly sketches: number;
  readonly bytes: number;
  readonly lastStep: number;
  readonly querySets: readonly QuerySetRecord[];
  /** The sample ids of each batch committed (duplicates left out), in commit order. */
  readonly sampleIds: ReadonlyArray<readonly string[]>;
  /** Durable transaction of the group, from its turn in the store (waiting for earlier commits included). */
  readonly commitMs: number;
  /** Where the group's time went (docs/observability.md, `motive_ingest_stage_seconds`). */
  readonly stages: CommitStages;
}

/** Time of each step between a batch's arrival and its Ack, for one group commit. */
export interface CommitStages {
  /** Per batch of the run in this group: from submission until its group was taken up. */
  readonly waitMs: readonly number[];
  /** Preparing the group: de-duplication, normalisation and the products with the queries. */
  readonly scoreMs: number;
  /** From prepared until its transaction began (the previous group's commit still running). */
  readonly queuedMs: number;
  /** The durable transaction itself: the log entries written and synced. */
  readonly durableMs: number;
  /** Applying the group to memory after its commit. */
  readonly applyMs: number;
}

export interface InfluenceEngineOptions {
  readonly maxGroupBytes: number;
  /** Rows of the int8 mirror per kernel call in `/attribute` scans. */
  readonly scanChunkSamples: number;
  /** Most distinct samples per run; a batch that would add more is rejected. */
  readonly maxSamplesPerRun: number;
}

/**
 * Batch weights (`weights.batchUpdates`): while a group is prepared, the engine projects each of
 * its samples' score and `seen` as they will be once the group is applied, and the weighting
 * service maps them to weights with the statistics of the run's last recompute. The weights that
 * moved are logged in the group's own transaction, so a batch's WeightUpdate follows its Ack with
 * no commit of its own.
 */
export interface BatchWeigher {
  /** Whether it gives batch weights at all (fixed for its lifetime): without, nothing is projected. */
  readonly batchUpdates: boolean;
  /**
   * The weight of a sample of `run` with score `score` after `seen` batches and its latest
   * features (undefined: none), or undefined when the
   * run has no statistics to use (batch updates off, no recompute yet, or it scored over a query
   * count other than `queries`).
   */
  batchPolicy(run: RunState, queries: number): ((score: number, seen: number, features: Float32Array | undefined) => number) | undefined;
  /** Whether a weight that moves from `from` to `to` is pushed. */
  moves(from: number, to: number): boolean;
  /**
   * Batch weights committed with their group at weights `version`, not yet applied: called with
   * the group's Acks when they are sent before its apply (see {@link InfluenceEngine.submitBatch}),
   * so that the trainers have the weights with the Acks.
   */
  durable(run: RunState, version: number, ids: readonly string[], weights: Float32Array): void;
  /** The same, applied to memory: announce them (`trainersTold`: {@link BatchWeigher.durable} came first). */
  announce(
    run: RunState,
    version: number,
    ids: readonly string[],
    weights: Float32Array,
    newlyDownweighted: readonly string[],
    trainersTold: boolean,
  ): void;
}
