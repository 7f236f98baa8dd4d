/**
 * Types of the motive.v1 wire messages. Generated from schemas/motive.proto by `npm run gen:wire` (scripts/wire-types.ts); do not edit.
 *
 * `XMsg`: a message as grpc-js decodes it with {@link WIRE_DECODE_OPTIONS}; `XInit`: what may be
 * written (every field optional, one member per oneof).
 */

/** The `@grpc/proto-loader` options the `…Msg` types describe; load the schema with these. */
export const WIRE_DECODE_OPTIONS = { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true } as const;

export type TrainerMessageMsg =
  | { readonly body: 'hello'; readonly hello: HelloMsg }
  | { readonly body: 'batch'; readonly batch: SketchBatchMsg }
  | { readonly body: 'queries'; readonly queries: QuerySetMsg }
  | { readonly body: 'heartbeat'; readonly heartbeat: HeartbeatMsg }
  | { readonly body?: undefined };

export type TrainerMessageInit =
  | { readonly hello: HelloInit; readonly batch?: never; readonly queries?: never; readonly heartbeat?: never }
  | { readonly batch: SketchBatchInit; readonly hello?: never; readonly queries?: never; readonly heartbeat?: never }
  | { readonly queries: QuerySetInit; readonly hello?: never; readonly batch?: never; readonly heartbeat?: never }
  | { readonly heartbeat: HeartbeatInit; readonly hello?: never; readonly batch?: never; readonly queries?: never };

export type DaemonMessageMsg =
  | { readonly body: 'welcome'; readonly welcome: WelcomeMsg }
  | { readonly body: 'ack'; readonly ack: AckMsg }
  | { readonly body: 'weights'; readonly weights: WeightUpdateMsg }
  | { readonly body: 'error'; readonly error: ErrorMsg }
  | { readonly body?: undefined };

export type DaemonMessageInit =
  | { readonly welcome: WelcomeInit; readonly ack?: never; readonly weights?: never; readonly error?: never }
  | { readonly ack: AckInit; readonly welcome?: never; readonly weights?: never; readonly error?: never }
  | { readonly weights: WeightUpdateInit; readonly welcome?: never; readonly ack?: never; readonly error?: never }
  | { readonly error: ErrorInit; readonly welcome?: never; readonly ack?: never; readonly weights?: never };

export type DType = 'DTYPE_UNSPECIFIED' | 'FLOAT32' | 'FLOAT16';

export interface ProjectionMsg {
  readonly kind: string;
  readonly seed: number;
  readonly dim: number;
  readonly fingerprint: string;
}

export interface ProjectionInit {
  readonly kind?: string;
  readonly seed?: number | string;
  readonly dim?: number;
  readonly fingerprint?: string;
}

export interface HelloMsg {
  readonly runId: string;
  readonly rank: number;
  readonly worldSize: number;
  /** dim = sketch length k; fingerprint identifies P */
  readonly projection: ProjectionMsg | null;
  readonly dtype: DType | number;
  readonly token: string;
  readonly client: string;
  /** the trainer wants WeightUpdate messages */
  readonly applyWeights: boolean;
  /** optional per-clip motion checks sent with batches (docs/wire.md) */
  readonly featureNames: string[];
  /** a side-car worker: its batches answer jobs (job_ids), rank and seq dedup do not apply */
  readonly worker: boolean;
}

export interface HelloInit {
  readonly runId?: string;
  readonly rank?: number;
  readonly worldSize?: number;
  /** dim = sketch length k; fingerprint identifies P */
  readonly projection?: ProjectionInit | null;
  readonly dtype?: DType | number;
  readonly token?: string;
  readonly client?: string;
  /** the trainer wants WeightUpdate messages */
  readonly applyWeights?: boolean;
  /** optional per-clip motion checks sent with batches (docs/wire.md) */
  readonly featureNames?: readonly string[];
  /** a side-car worker: its batches answer jobs (job_ids), rank and seq dedup do not apply */
  readonly worker?: boolean;
}

export interface SketchBatchMsg {
  /** per (run, rank): 1, 2, 3, ... ; resent batches keep their seq */
  readonly seq: number;
  /** optimizer step */
  readonly step: number;
  /** its learning rate */
  readonly lr: number;
  readonly sampleIds: string[];
  /** row-major [len(sample_ids) x k], little-endian, Hello.dtype */
  readonly sketches: Buffer;
  /** optional per-sample motion loss */
  readonly losses: number[];
  /** optional, row-major [len(sample_ids) x len(Hello.feature_names)] */
  readonly features: number[];
  /** side-car report: trained on sample_ids at step/lr, no sketches; workers attribute them */
  readonly deferred: boolean;
  /** worker batches only: the job each row answers, one per sample id */
  readonly jobIds: number[];
  /** worker batches only: the step of the parameter snapshot the sketches were taken at */
  readonly snapshotStep: number;
}

export interface SketchBatchInit {
  /** per (run, rank): 1, 2, 3, ... ; resent batches keep their seq */
  readonly seq?: number | string;
  /** optimizer step */
  readonly step?: number | string;
  /** its learning rate */
  readonly lr?: number;
  readonly sampleIds?: readonly string[];
  /** row-major [len(sample_ids) x k], little-endian, Hello.dtype */
  readonly sketches?: Uint8Array;
  /** optional per-sample motion loss */
  readonly losses?: readonly number[];
  /** optional, row-major [len(sample_ids) x len(Hello.feature_names)] */
  readonly features?: readonly number[];
  /** side-car report: trained on sample_ids at step/lr, no sketches; workers attribute them */
  readonly deferred?: boolean;
  /** worker batches only: the job each row answers, one per sample id */
  readonly jobIds?: readonly (number | string)[];
  /** worker batches only: the step of the parameter snapshot the sketches were taken at */
  readonly snapshotStep?: number | string;
}

export interface QuerySetMsg {
  /** a refresh of the query gradients at this step */
  readonly version: number;
  readonly step: number;
  readonly queryIds: string[];
  /** optional ("motion", ...) */
  readonly groups: string[];
  /** [len(query_ids) x k] */
  readonly sketches: Buffer;
}

export interface QuerySetInit {
  /** a refresh of the query gradients at this step */
  readonly version?: number | string;
  readonly step?: number | string;
  readonly queryIds?: readonly string[];
  /** optional ("motion", ...) */
  readonly groups?: readonly string[];
  /** [len(query_ids) x k] */
  readonly sketches?: Uint8Array;
}

export interface HeartbeatMsg {
  readonly step: number;
}

export interface HeartbeatInit {
  readonly step?: number | string;
}

export interface WelcomeMsg {
  readonly lastCommittedSeq: number;
  readonly weightsVersion: number;
  readonly daemon: string;
  /** newest QuerySet version the run holds; a restarted trainer continues above it */
  readonly queryVersion: number;
}

export interface WelcomeInit {
  readonly lastCommittedSeq?: number | string;
  readonly weightsVersion?: number | string;
  readonly daemon?: string;
  /** newest QuerySet version the run holds; a restarted trainer continues above it */
  readonly queryVersion?: number | string;
}

export interface AckMsg {
  /** sent only after the batch is durably committed */
  readonly seq: number;
}

export interface AckInit {
  /** sent only after the batch is durably committed */
  readonly seq?: number | string;
}

export interface WeightUpdateMsg {
  readonly version: number;
  readonly full: boolean;
  readonly sampleIds: string[];
  readonly weights: number[];
}

export interface WeightUpdateInit {
  readonly version?: number | string;
  readonly full?: boolean;
  readonly sampleIds?: readonly string[];
  readonly weights?: readonly number[];
}

export interface ErrorMsg {
  readonly code: string;
  readonly message: string;
  readonly fatal: boolean;
  readonly seq: number;
}

export interface ErrorInit {
  readonly code?: string;
  readonly message?: string;
  readonly fatal?: boolean;
  readonly seq?: number | string;
}

export interface LeaseRequestMsg {
  readonly runId: string;
  readonly token: string;
  /** a name for metrics and logs */
  readonly worker: string;
  /** at most this many jobs (1 to 4096) */
  readonly maxJobs: number;
  /** 0: the daemon's sidecar.leaseMs; a job not answered by then is leased again */
  readonly leaseMs: number;
}

export interface LeaseRequestInit {
  readonly runId?: string;
  readonly token?: string;
  /** a name for metrics and logs */
  readonly worker?: string;
  /** at most this many jobs (1 to 4096) */
  readonly maxJobs?: number;
  /** 0: the daemon's sidecar.leaseMs; a job not answered by then is leased again */
  readonly leaseMs?: number;
}

export interface JobMsg {
  readonly id: number;
  readonly step: number;
  readonly lr: number;
  readonly sampleId: string;
}

export interface JobInit {
  readonly id?: number | string;
  readonly step?: number | string;
  readonly lr?: number;
  readonly sampleId?: string;
}

export interface LeaseReplyMsg {
  /** the newest reports first, by step */
  readonly jobs: JobMsg[];
  /** jobs of the run not yet attributed, leased or not */
  readonly backlog: number;
}

export interface LeaseReplyInit {
  /** the newest reports first, by step */
  readonly jobs?: readonly JobInit[];
  /** jobs of the run not yet attributed, leased or not */
  readonly backlog?: number | string;
}
