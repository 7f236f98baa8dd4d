/**
 * The live feed's event union (daemon/api/live-events.ts) against what a real daemon sends: every
 * message of a streaming run has exactly the fields its type declares, and `motive watch` reads
 * each one through the same type.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { isLiveEvent, type LiveEvent, type LiveEventOf } from '../../daemon/api/live-events.js';
import { applyEvent, describeEvent, renderWatch, type WatchState } from '../../daemon/cli/commands/watch.js';
import { streamSyntheticRun } from '../../daemon/cli/synthetic-run.js';
import { startTestDaemon } from '../helpers/daemon.js';

/** The fields of each event type, written out here as docs/observability.md lists them. */
const FIELDS = {
  hello: ['type', 'run', 't', 'types', 'exists'],
  batches: [
    'type',
    'run',
    't',
    'batches',
    'sketches',
    'bytes',
    'lastStep',
    'commitMs',
    'fromMs',
    'toMs',
    'batchesPerSec',
    'sketchesPerSec',
  ],
  weights: ['type', 'run', 't', 'version', 'full', 'changed', 'newlyDownweighted', 'downweighted', 'quarantined', 'changes'],
  harmful: ['type', 'run', 't', 'version', 'count', 'threshold', 'samples'],
  queries: ['type', 'run', 't', 'version', 'step', 'queries', 'ids', 'groups'],
  top: [
    'type',
    'run',
    't',
    'samples',
    'batches',
    'sketches',
    'lastStep',
    'weightsVersion',
    'queryVersion',
    'downweighted',
    'quarantined',
    'harmful',
    'helpful',
    'scoreHistogram',
    'weightHistogram',
    'sidecar',
  ],
} as const satisfies { readonly [T in LiveEvent['type']]: ReadonlyArray<keyof LiveEventOf<T>> };

// Compile-time half: a field added to a type in live-events.ts and not listed above fails `tsc`.
type Unlisted<T extends LiveEvent['type']> = Exclude<keyof LiveEventOf<T>, (typeof FIELDS)[T][number]>;
const allListed: { readonly [T in LiveEvent['type']]: [Unlisted<T>] extends [never] ? true : false } = {
  hello: true,
  batches: true,
  weights: true,
  harmful: true,
  queries: true,
  top: true,
};

describe('live events', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;

  beforeAll(async () => {
    daemon = await startTestDaemon({ weights: { minSeen: 2, intervalMs: 100, signal: 'attribution' } });
  });

  afterAll(async () => {
    await daemon.cleanup();
  });

  it('are what the union declares, type by type, and motive watch reads every one', async () => {
    expect(Object.values(allListed).every((v) => v)).toBe(true);
    const raw: unknown[] = [];
    const ws = new WebSocket(`ws://127.0.0.1:${daemon.httpPort}/v1/runs/ev-a/live`);
    ws.on('message', (data: Buffer) => raw.push(JSON.parse(data.toString())));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    await streamSyntheticRun({ address: `127.0.0.1:${daemon.grpcPort}`, runId: 'ev-a', steps: 120, stepDelayMs: 4, queryRefreshEvery: 50 });
    await daemon.weighting.flushAll();
    await new Promise((r) => setTimeout(r, 1500));
    ws.close();

    const events: LiveEvent[] = [];
    for (const m of raw) {
      expect(isLiveEvent(m)).toBe(true);
      if (isLiveEvent(m)) events.push(m);
    }
    const seen = new Set(events.map((e) => e.type));
    expect([...seen].sort()).toEqual(Object.keys(FIELDS).sort());
    for (const e of events) {
      expect(Object.keys(e).sort(), e.type).toEqual([...FIELDS[e.type]].sort());
      expect(e.run).toBe('ev-a');
    }

    // watch: one line per event but `top`, naming the event's own figures.
    for (const e of events) {
      const line = describeEvent(e);
      if (e.type === 'top') expect(line).toBeUndefined();
      else expect(line).toMatch(/^\d\d:\d\d:\d\d {2}/);
      if (e.type === 'batches') expect(line).toContain(`+${e.batches} batches (${e.sketches} sketches), step ${e.lastStep}`);
      if (e.type === 'weights') expect(line).toContain(`weights v${e.version}: ${e.changed} changed`);
      if (e.type === 'queries') expect(line).toContain(`query set v${e.version} at step ${e.step}`);
      if (e.type === 'harmful') expect(line).toContain(e.samples[0]!.id);
    }
    const state: WatchState = { run: 'ev-a', top: undefined, sketchesPerSec: 0, log: [] };
    for (const e of events) applyEvent(state, e);
    const lastTop = events.filter((e) => e.type === 'top').at(-1)!;
    expect(state.top).toBe(lastTop);
    expect(renderWatch(state)).toContain(`samples ${lastTop.samples}   sketches ${lastTop.sketches}`);
  });

  it('are told from other messages by their envelope', () => {
    expect(isLiveEvent({ type: 'batches', run: 'r', t: 1 })).toBe(true);
    expect(isLiveEvent({ type: 'nope', run: 'r', t: 1 })).toBe(false);
    expect(isLiveEvent({ type: 'top', t: 1 })).toBe(false);
    expect(isLiveEvent({ type: 'top', run: 'r', t: '1' })).toBe(false);
    expect(isLiveEvent(null)).toBe(false);
    expect(isLiveEvent('top')).toBe(false);
  });
});
