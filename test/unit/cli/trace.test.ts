/**
 * `motive trace FILE`: reads a trace written by hand (three Acks whose every step is known) and
 * prints the summary; usage and missing-trace errors.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../daemon/cli/cli.js';
import { tempDir } from '../../helpers/daemon.js';

const dir = tempDir('motive-trace-cli-');
afterAll(() => dir.remove());

function capture(): { io: { out: (s: string) => void; err: (s: string) => void }; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return { io: { out: (s) => (out += s), err: (s) => (err += s) }, out: () => out, err: () => err };
}

describe('motive trace', () => {
  // Acks of 4, 6 and 20 ms; the last one's commit takes 15 ms, with a GC pause of 3 ms inside it.
  const file = join(dir.path, 'trace.txt');
  writeFileSync(
    file,
    [
      'ack 0 1 100 100.5 104',
      'batch 0 1 100.5 101 102 102.5 103',
      'ack 0 2 200 200.5 206',
      'batch 0 2 200.5 201 202 202.5 205',
      'ack 0 3 300 300.5 320',
      'batch 0 3 300.5 301 302 302.5 317.5',
      'gc 310 313',
      'commit 302.5 317.5 1',
    ].join('\n'),
  );

  it('prints the median and the slowest Acks step by step', async () => {
    const c = capture();
    expect(await runCli(['trace', file], c.io)).toBe(0);
    expect(c.out()).toMatch(/^3 Acks: p50 6\.0 ms, p99 6\.0 ms/);
    // slowest 1 % of 3 is the 20 ms Ack: decode 0.5, wait 0.5, score 1, queued 0.5, commit 15, send 2.5, GC 3
    const slowest = c
      .out()
      .split('\n')
      .find((l) => l.startsWith('slowest 1 %'));
    expect(slowest?.split(/\s{2,}/)).toEqual([
      'slowest 1 %',
      '1',
      '20.0',
      '0.5',
      '0.5',
      '1.0',
      '0.5',
      '15.0',
      '2.5',
      '0.0',
      '0.0',
      '0.0',
      '3.0',
    ]);
  });

  it('prints JSON with --json, and leaves out the warm-up', async () => {
    const c = capture();
    // A warm-up of 50 ms after the first Ack read (at 100): that Ack alone is left out.
    expect(await runCli(['trace', file, '--json', '--warmup-ms', '50'], c.io)).toBe(0);
    const s = JSON.parse(c.out()) as { acks: number; groups: Array<{ name: string; ackMs: number; steps: { commit: number } }> };
    expect(s.acks).toBe(2);
    expect(s.groups.map((g) => [g.name, g.ackMs])).toEqual([
      // two Acks left: p40–p60 holds both (6 and 20 ms), the slowest 1 % the 20 ms one
      ['median (p40–p60)', 13],
      ['slowest 1 %', 20],
    ]);
    expect(s.groups[1]?.steps.commit).toBeCloseTo(15, 12);
  });

  it('says what is wrong: no file, a missing file, a trace without Acks', async () => {
    const none = capture();
    expect(await runCli(['trace'], none.io)).toBe(2);
    expect(none.err()).toMatch(/expected one FILE/);
    const missing = capture();
    expect(await runCli(['trace', join(dir.path, 'nope.txt')], missing.io)).toBe(1);
    expect(missing.err()).toMatch(/no such file/);
    const empty = join(dir.path, 'empty.txt');
    writeFileSync(empty, 'gc 1 2\n');
    const noAcks = capture();
    expect(await runCli(['trace', empty], noAcks.io)).toBe(1);
    expect(noAcks.err()).toMatch(/no acknowledged batch.*MOTIVE_TRACE_FILE/);
  });
});
