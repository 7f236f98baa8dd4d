/**
 * The Ack-path trace (`MOTIVE_TRACE_FILE`, daemon/shared/trace.ts): a real daemon process writes
 * one `ack` and one `batch` line per acknowledged batch, their times in the order the Ack path
 * runs, and `motive trace` (daemon/shared/trace-summary.ts) reads them back.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { summariseAckTrace } from '../../daemon/shared/trace-summary.js';
import { spawnDaemon, tempDir } from '../helpers/daemon.js';
import { batch, hello, rawStream } from '../helpers/raw-stream.js';

const dir = tempDir('motive-ack-trace-');
afterAll(() => dir.remove());

describe('Ack-path trace', () => {
  it('records each acknowledged batch step by step, in order', async () => {
    const file = join(dir.path, 'trace.txt');
    const d = await spawnDaemon({
      MOTIVE_DATA_DIR: join(dir.path, 'store'),
      MOTIVE_GRPC_PORT: '0',
      MOTIVE_HTTP_PORT: '0',
      MOTIVE_TRACE_FILE: file,
    });
    const s = rawStream(`127.0.0.1:${d.grpcPort}`);
    try {
      s.write(hello('traced', 4));
      expect(await s.next(10_000)).toHaveProperty('welcome');
      for (let seq = 1; seq <= 3; seq++)
        s.write(
          batch(
            seq,
            [`a${seq}`, `b${seq}`],
            Float32Array.from({ length: 8 }, (_, i) => i + seq),
          ),
        );
      const acked: number[] = [];
      while (acked.length < 3) {
        const m = await s.next(10_000);
        if (m === 'end') throw new Error('stream ended');
        if (m.ack) acked.push(m.ack.seq);
      }
      expect(acked).toEqual([1, 2, 3]);
    } finally {
      s.close();
      d.proc.kill('SIGTERM');
      await d.exited;
    }
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    const fields = (kind: string, seq: number): number[] => {
      const line = lines.find((l) => l.startsWith(`${kind} 0 ${seq} `));
      if (line === undefined) throw new Error(`no ${kind} line for seq ${seq}`);
      return line.split(' ').slice(3).map(Number);
    };
    for (let seq = 1; seq <= 3; seq++) {
      const [received, submitted, ackedAt] = fields('ack', seq) as [number, number, number];
      const steps = fields('batch', seq);
      expect(steps).toHaveLength(5);
      // read ≤ decoded ≤ (engine: submitted ≤ taken ≤ prepared ≤ writing ≤ durable) ≤ Ack sent
      const times = [received, ...steps, ackedAt];
      for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThanOrEqual(times[i - 1] as number);
      expect(Math.abs((steps[0] as number) - submitted)).toBeLessThan(1);
    }
    // The group commits themselves (and the run's creation) are traced as store commits.
    expect(lines.filter((l) => l.startsWith('commit ')).length).toBeGreaterThanOrEqual(1);
    expect(summariseAckTrace(lines.join('\n'), 0).acks).toBe(3);
  });
});
