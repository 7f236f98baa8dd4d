/**
 * The durable commit (docs/store.md, "Durability"): every write of the main environment goes
 * through one queue, in call order, as one LMDB transaction per call that resolves once it is on
 * disk. It hands out log sequence numbers, keeps each run's record as last committed (ahead of
 * memory while a commit awaits its apply) and which committed log entries memory has not applied.
 */
import { MotiveError, trace } from '../shared/index.js';
import { float32Bytes } from './codec.js';
import type { FeatureTables } from './features.js';
import type { QuerySetRecord, RunState, SketchDType } from './run-state.js';
import { storeError } from './store-errors.js';
import { settled, type LogRecord, type QueryRecord, type RunRecord, type Tables } from './tables.js';
import { settleTurnBatch } from './turn-batch.js';

/** A change to a run's persisted record ({@link StoreTx.updateRun}). */
export interface RunUpdate {
  readonly addBatches?: number;
  readonly addSketches?: number;
  /** Raises lastStep to this when larger. */
  readonly lastStep?: number;
  readonly weightsVersion?: number;
  /** The full list of query ids (only ever appended to). */
  readonly queryIds?: readonly string[];
}

/** A batch to log: what recovery needs to apply it again exactly as it was applied live. */
export interface LoggedBatch {
  readonly step: number;
  readonly lr: number;
  readonly sampleIds: readonly string[];
  /** Wire bytes of the sketches, in `wireDtype` (the sending rank's, not necessarily the run's). */
  readonly wire: Uint8Array;
  readonly wireDtype: SketchDType;
  readonly querySet: QuerySetRecord | undefined;
  /** [n × m] float32 products with `querySet`. */
  readonly products: Float32Array | undefined;
}

/** Writes allowed inside {@link Store.commit}. None changes memory. */
export interface StoreTx {
  /** Persists the run as it is in memory (info, query ids, counters). */
  putRun(run: RunState): void;
  /**
   * Changes the run's persisted record relative to what earlier commits persisted (which may be
   * ahead of memory while their callers have not applied them yet).
   */
  updateRun(run: RunState, update: RunUpdate): void;
  putCommit(runId: string, rank: number, seq: number): void;
  putQuerySet(runId: string, qs: QuerySetRecord): void;
  /** Appends a batch to the log; returns its log sequence number, for {@link Store.applyBatch}. */
  appendBatch(runId: string, batch: LoggedBatch): number;
  /** Stores a batch's per-sample features ([ids.length × nf] float32; the latest row of a sample wins, features.ts). */
  putFeatures(runId: string, ids: readonly string[], rows: Float32Array, nf: number): void;
  /** Appends a weight change to the log; returns its log sequence number, for {@link Store.applyWeights}. */
  appendWeights(runId: string, ids: readonly string[], weights: Float32Array): number;
  /**
   * The run's weights version as persisted by the commits before this one and this one so far:
   * a new weights version is this + 1, allocated in log order whoever commits it.
   */
  weightsVersion(run: RunState): number;
  /** A write of another table of the main environment (side-car jobs, jobs.ts) in this transaction. */
  write(w: () => unknown): void;
}

/** A log entry a transaction appended. */
interface Appended {
  readonly lsn: number;
  readonly runId: string;
}

/**
 * One transaction's {@link StoreTx}: its writes are collected and issued only once the caller's
 * `mutate` has returned (all of them or none); `rollback` undoes what it did to the log's memory.
 */
class LogTransaction implements StoreTx {
  readonly writes: Array<() => void> = [];
  readonly appended: Appended[] = [];
  /** persistedRuns entries as they were before this transaction. */
  private readonly before = new Map<string, RunRecord | undefined>();
  private readonly lsnBefore: number;

  constructor(private readonly log: CommitLog) {
    this.lsnBefore = log.lsn;
  }

  putRun = (run: RunState): void => {
    this.persist({
      info: run.info,
      queryIds: [...run.queryIds],
      weightsVersion: run.weightsVersion,
      batches: run.batches,
      sketches: run.sketches,
      lastStep: run.lastStep,
    });
  };

  updateRun = (run: RunState, u: RunUpdate): void => {
    const prev = this.persisted(run);
    this.persist({
      info: prev.info,
      queryIds: u.queryIds === undefined ? prev.queryIds : [...u.queryIds],
      weightsVersion: u.weightsVersion ?? prev.weightsVersion,
      batches: prev.batches + (u.addBatches ?? 0),
      sketches: prev.sketches + (u.addSketches ?? 0),
      lastStep: Math.max(prev.lastStep, u.lastStep ?? 0),
    });
  };

  putCommit = (runId: string, rank: number, seq: number): void => {
    this.write(() => this.log.tables.commits.put([runId, rank], seq));
  };

  putQuerySet = (runId: string, qs: QuerySetRecord): void => {
    // A set is stored when it first commits, with its sketches (only older sets drop them).
    if (qs.sketches === undefined) throw new Error(`query set v${qs.version} of run ${runId} has no sketches to store`);
    const record: QueryRecord = {
      version: qs.version,
      step: qs.step,
      ids: [...qs.ids],
      groups: [...qs.groups],
      receivedAtMs: qs.receivedAtMs,
      sketches: float32Bytes(qs.sketches),
    };
    this.write(() => this.log.tables.queries.put([runId, qs.version], record));
  };

  appendBatch = (runId: string, b: LoggedBatch): number =>
    this.append({
      kind: 'batch',
      runId,
      step: b.step,
      lr: b.lr,
      qsVersion: b.querySet?.version ?? 0,
      ids: b.sampleIds as string[],
      products: b.products === undefined ? new Uint8Array(0) : float32Bytes(b.products),
      sketches: b.wire,
      dtype: b.wireDtype,
    });

  putFeatures = (runId: string, ids: readonly string[], rows: Float32Array, nf: number): void => {
    for (const w of this.log.features.rowWrites(runId, ids, rows, nf)) this.write(w);
  };

  appendWeights = (runId: string, ids: readonly string[], weights: Float32Array): number =>
    this.append({ kind: 'weights', runId, ids: ids as string[], weights: float32Bytes(weights) });

  weightsVersion = (run: RunState): number => this.persisted(run).weightsVersion;

  write = (w: () => unknown): void => {
    this.writes.push(() => settled(w()));
  };

  /** Restores the log's memory as it was before this transaction (it failed). */
  rollback(): void {
    this.log.lsn = this.lsnBefore;
    for (const [id, record] of this.before) {
      if (record === undefined) this.log.persistedRuns.delete(id);
      else this.log.persistedRuns.set(id, record);
    }
  }

  private append(record: LogRecord): number {
    const lsn = ++this.log.lsn;
    this.appended.push({ lsn, runId: record.runId });
    this.write(() => this.log.tables.log.put(lsn, record));
    return lsn;
  }

  private persisted(run: RunState): RunRecord {
    const prev = this.log.persistedRuns.get(run.info.id);
    if (prev === undefined) throw new MotiveError('MOTIVE_INGEST_INTERNAL', `run ${run.info.id} is not persisted`);
    return prev;
  }

  private persist(record: RunRecord): void {
    const id = record.info.id;
    if (!this.before.has(id)) this.before.set(id, this.log.persistedRuns.get(id));
    this.log.persistedRuns.set(id, record);
    this.write(() => this.log.tables.runs.put(id, record));
  }
}

/** The commit queue and the write-ahead log's bookkeeping. */
export class CommitLog {
  readonly tables: Tables;
  readonly features: FeatureTables;
  /** Each run's record as last committed: ahead of memory while a commit awaits its apply. */
  readonly persistedRuns = new Map<string, RunRecord>();
  /** Last log sequence number handed out, and the last one applied to memory. */
  lsn = 0;
  appliedLsn = 0;
  /** Log entries not yet trimmed. */
  entries = 0;
  /** Durable transactions made since the store was opened. */
  count = 0;
  private readonly runStates: ReadonlyMap<string, RunState>;
  private readonly dataDir: string;
  private readonly commitDelayMs: number;
  private readonly syncCommits: boolean;
  private queue: Promise<void> = Promise.resolve();
  /** Committed log entries not applied to memory yet, with their run. */
  private readonly unapplied = new Map<number, RunState | undefined>();

  constructor(
    tables: Tables,
    features: FeatureTables,
    runStates: ReadonlyMap<string, RunState>,
    options: { dataDir: string; commitDelayMs?: number; syncCommits?: boolean },
  ) {
    this.tables = tables;
    this.features = features;
    this.runStates = runStates;
    this.dataDir = options.dataDir;
    this.commitDelayMs = options.commitDelayMs ?? 0;
    this.syncCommits = options.syncCommits ?? false;
  }

  /** Settles once every commit queued so far has. */
  get tail(): Promise<void> {
    return this.queue;
  }

  /**
   * Runs `mutate`, then writes what it wrote and `direct` (the store's own writes outside StoreTx:
   * log trims, run deletion) in one transaction, after every commit queued before it. `direct`
   * runs inside the same batch: a write issued outside a batch joins lmdb-js's event-turn batch,
   * whose own promise nobody holds, and a failed commit (a full disk) would reject it unhandled.
   */
  commit<T>(mutate: (tx: StoreTx) => T, direct?: () => void): Promise<T> {
    const result = this.queue.then(() => this.commitNow(mutate, direct));
    this.queue = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private async commitNow<T>(mutate: (tx: StoreTx) => T, direct?: () => void): Promise<T> {
    if (this.commitDelayMs > 0) await new Promise((r) => setTimeout(r, this.commitDelayMs));
    const started = trace.on ? performance.now() : 0;
    const tx = new LogTransaction(this);
    let result: T;
    try {
      result = mutate(tx);
      await this.writeDurably(() => {
        for (const w of tx.writes) w();
        direct?.();
      });
    } catch (err) {
      settleTurnBatch(this.tables.root);
      tx.rollback();
      throw await storeError(err, this.dataDir);
    }
    if (trace.on) trace.event('commit', started, performance.now(), tx.appended.length);
    this.count++;
    this.entries += tx.appended.length;
    for (const a of tx.appended) this.unapplied.set(a.lsn, this.runStates.get(a.runId));
    return result;
  }

  /**
   * The writes as one batch: lmdb-js runs it on its write thread in one transaction, with no turn
   * of this thread in between (a transaction callback would hold the write lock until this thread
   * got to it). `syncCommits` writes it here, synchronously, instead. Durable only after
   * `flushed` either way.
   */
  private async writeDurably(write: () => void): Promise<void> {
    const root = this.tables.root;
    if (this.syncCommits) root.transactionSync(write);
    else await root.batch(write);
    await root.flushed;
  }

  /** Marks the entry `lsn` applied to memory. */
  applied(lsn: number): void {
    this.unapplied.delete(lsn);
    if (lsn > this.appliedLsn) this.appliedLsn = lsn;
  }

  /** The newest LSN such that every committed entry up to it is applied to memory. */
  appliedPrefix(): number {
    let upTo = this.appliedLsn;
    for (const [lsn, run] of this.unapplied) {
      // An entry of a run deleted meanwhile is never applied, and has no effect to wait for.
      if (run === undefined || this.runStates.get(run.info.id) !== run) this.unapplied.delete(lsn);
      else if (lsn - 1 < upTo) upTo = lsn - 1;
    }
    return upTo;
  }
}
