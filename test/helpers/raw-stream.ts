/** A bare Attach stream for tests that need to send exactly the bytes they want. */
import * as grpc from '@grpc/grpc-js';
import { loadAttributionService } from '../../daemon/ingest/index.js';

export interface DaemonReply {
  welcome?: { lastCommittedSeq: number; weightsVersion: number; daemon: string };
  ack?: { seq: number };
  weights?: { version: number; full: boolean; sampleIds: string[]; weights: number[] };
  error?: { code: string; message: string; fatal: boolean; seq: number };
}

export interface RawStream {
  write(msg: unknown): void;
  /** Next daemon message, or 'end' when the daemon closed the stream. */
  next(timeoutMs?: number): Promise<DaemonReply | 'end'>;
  close(): void;
}

export function rawStream(address: string): RawStream {
  const { Client } = loadAttributionService();
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Attach(): grpc.ClientDuplexStream<unknown, DaemonReply>;
  };
  const call = client.Attach();
  const inbox: Array<DaemonReply | 'end'> = [];
  const waiters: Array<(m: DaemonReply | 'end') => void> = [];
  const deliver = (m: DaemonReply | 'end'): void => {
    const w = waiters.shift();
    if (w) w(m);
    else inbox.push(m);
  };
  call.on('data', (m: DaemonReply & { body?: string }) => {
    const { body: _body, ...rest } = m;
    deliver(rest);
  });
  call.on('end', () => deliver('end'));
  call.on('error', () => deliver('end'));
  return {
    write: (msg) => call.write(msg),
    next: (timeoutMs = 5000) => {
      const m = inbox.shift();
      if (m !== undefined) return Promise.resolve(m);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no daemon message in time')), timeoutMs);
        waiters.push((x) => {
          clearTimeout(t);
          resolve(x);
        });
      });
    },
    close: () => {
      call.cancel();
      client.close();
    },
  };
}

export function hello(runId: string, dim: number, extra: Record<string, unknown> = {}): unknown {
  return {
    hello: {
      runId,
      rank: 0,
      worldSize: 1,
      projection: { kind: 'gaussian', seed: 1, dim, fingerprint: 'fp-1' },
      dtype: 'FLOAT32',
      token: '',
      client: 'test',
      applyWeights: false,
      ...extra,
    },
  };
}

export function batch(seq: number, ids: string[], values: Float32Array, step = 0, lr = 0.01): unknown {
  return {
    batch: { seq, step, lr, sampleIds: ids, sketches: Buffer.from(values.buffer, values.byteOffset, values.byteLength), losses: [] },
  };
}
