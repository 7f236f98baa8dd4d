/**
 * `motive.v1.Attribution/Lease` (docs/wire.md, "Side-car attribution"): a worker asks for open
 * jobs of a run, the newest reports first; the daemon leases them to it in memory for `lease_ms` (after
 * that, or after a restart, they are leased again). A lease promises nothing about counting: a
 * job counts once, through the commit of the first worker batch that answers it (daemon/store/jobs.ts).
 */
import * as grpc from '@grpc/grpc-js';
import { MotiveError, type Authorizer } from '../shared/index.js';
import type { Store } from '../store/index.js';
import type { LeaseReplyInit, LeaseRequestMsg } from './proto.js';

export type LeaseCall = grpc.ServerUnaryCall<LeaseRequestMsg, LeaseReplyInit>;

/** Most jobs one Lease may ask for. */
export const MAX_LEASE_JOBS = 4096;
/** Longest lease a worker may ask for, ms (an hour). */
export const MAX_LEASE_MS = 3_600_000;

export interface LeaseOptions {
  readonly auth: Authorizer;
  /** `sidecar.leaseMs`: the lease of a request that names none. */
  readonly leaseMs: number;
}

export function handleLease(
  call: LeaseCall,
  callback: grpc.sendUnaryData<LeaseReplyInit>,
  store: Store,
  options: LeaseOptions,
  observer: { rejected?(code: string): void; leased?(runId: string, worker: string, jobs: number): void },
): void {
  const req = call.request;
  const refuse = (status: grpc.status, e: MotiveError): void => {
    observer.rejected?.(e.code);
    callback({ code: status, details: `${e.code}: ${e.message}` });
  };
  const auth = options.auth.check(req.token, 'attach', req.runId);
  if (!auth.ok) {
    if (auth.reason === 'unauthenticated') refuse(grpc.status.UNAUTHENTICATED, new MotiveError('MOTIVE_INGEST_UNAUTHENTICATED'));
    else refuse(grpc.status.PERMISSION_DENIED, new MotiveError('MOTIVE_INGEST_FORBIDDEN', `run ${req.runId}`));
    return;
  }
  if (!Number.isInteger(req.maxJobs) || req.maxJobs < 1 || req.maxJobs > MAX_LEASE_JOBS) {
    refuse(
      grpc.status.INVALID_ARGUMENT,
      new MotiveError('MOTIVE_INGEST_LEASE_INVALID', `max_jobs ${req.maxJobs} not in [1, ${MAX_LEASE_JOBS}]`),
    );
    return;
  }
  if (!Number.isInteger(req.leaseMs) || req.leaseMs < 0 || req.leaseMs > MAX_LEASE_MS) {
    refuse(
      grpc.status.INVALID_ARGUMENT,
      new MotiveError('MOTIVE_INGEST_LEASE_INVALID', `lease_ms ${req.leaseMs} not in [0, ${MAX_LEASE_MS}]`),
    );
    return;
  }
  if (store.run(req.runId) === undefined) {
    // No run yet (the trainer has not attached): nothing to do, the worker asks again.
    callback(null, { jobs: [], backlog: 0 });
    return;
  }
  const jobs = store.jobs.lease(req.runId, req.maxJobs, req.leaseMs === 0 ? options.leaseMs : req.leaseMs);
  if (jobs.length > 0) observer.leased?.(req.runId, req.worker.slice(0, 64), jobs.length);
  callback(null, {
    jobs: jobs.map((j) => ({ id: j.id, step: j.step, lr: j.lr, sampleId: j.sampleId })),
    backlog: store.jobs.backlog(req.runId),
  });
}
