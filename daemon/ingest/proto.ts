/** Loads `schemas/motive.proto` and gives typed shapes of its messages as grpc-js decodes them. */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_PATH = fileURLToPath(new URL('../../schemas/motive.proto', import.meta.url));

/** Decoding options shared by the server and the TypeScript client. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

export interface ProjectionMsg {
  kind: string;
  seed: number | string;
  dim: number;
  fingerprint: string;
}
export interface HelloMsg {
  runId: string;
  rank: number;
  worldSize: number;
  projection: ProjectionMsg | null;
  dtype: string | number;
  token: string;
  client: string;
  applyWeights: boolean;
  /** Per-clip feature names (empty: the stream sends no features). */
  featureNames?: string[];
  /** A side-car worker's stream (docs/wire.md). */
  worker?: boolean;
}
export interface SketchBatchMsg {
  seq: number;
  step: number;
  lr: number;
  sampleIds: string[];
  sketches: Buffer;
  losses: number[];
  /** Row-major [sampleIds.length × featureNames.length], or empty. */
  features?: number[];
  /** A side-car report: no sketches, its samples become jobs. */
  deferred?: boolean;
  /** A worker batch: the job each row answers. */
  jobIds?: number[];
  /** A worker batch: the step of the snapshot it was sketched at. */
  snapshotStep?: number;
}
export interface LeaseRequestMsg {
  runId: string;
  token: string;
  worker: string;
  maxJobs: number;
  leaseMs: number;
}
export interface LeaseReplyMsg {
  jobs: Array<{ id: number; step: number; lr: number; sampleId: string }>;
  backlog: number;
}
export interface QuerySetMsg {
  version: number;
  step: number;
  queryIds: string[];
  groups: string[];
  sketches: Buffer;
}
export interface TrainerMessageMsg {
  body?: 'hello' | 'batch' | 'queries' | 'heartbeat';
  hello?: HelloMsg | null;
  batch?: SketchBatchMsg | null;
  queries?: QuerySetMsg | null;
  heartbeat?: { step: number } | null;
}
export type DaemonMessageMsg =
  | { welcome: { lastCommittedSeq: number; weightsVersion: number; daemon: string; queryVersion: number } }
  | { ack: { seq: number } }
  | { weights: { version: number; full: boolean; sampleIds: readonly string[]; weights: readonly number[] } }
  | { error: { code: string; message: string; fatal: boolean; seq: number } };

/** The `motive.v1.Attribution` service definition and client constructor. */
export function loadAttributionService(): { service: grpc.ServiceDefinition; Client: grpc.ServiceClientConstructor } {
  const definition = protoLoader.loadSync(PROTO_PATH, PROTO_LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    motive: { v1: { Attribution: grpc.ServiceClientConstructor } };
  };
  const Client = pkg.motive.v1.Attribution;
  return { service: Client.service, Client };
}
