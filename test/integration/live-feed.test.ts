/**
 * The WebSocket live feed on a real daemon: events follow commits within 250 ms, filters hold,
 * and a client that never reads is skipped, then disconnected, while the daemon's memory stays
 * bounded.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { streamSyntheticRun, syntheticClipIds } from '../../daemon/cli/synthetic-run.js';
import { startTestDaemon } from '../helpers/daemon.js';

interface Received {
  at: number;
  event: { type: string; sketches?: number; [k: string]: unknown };
}

function openFeed(port: number, run: string, types?: string): Promise<{ ws: WebSocket; events: Received[] }> {
  const events: Received[] = [];
  const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/runs/${run}/live${types === undefined ? '' : `?types=${types}`}`);
  ws.on('message', (data: Buffer) => events.push({ at: Date.now(), event: JSON.parse(data.toString()) }));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, events }));
    ws.once('error', reject);
  });
}

describe('live feed', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;

  beforeAll(async () => {
    // This run sends no motion checks: under either signal its weights come from the score alone.
    daemon = await startTestDaemon({ weights: { minSeen: 2, intervalMs: 100, signal: 'attribution' } });
  });

  afterAll(async () => {
    await daemon.cleanup();
  });

  it('delivers committed batches within 250 ms, plus weights, harmful crossings, query refreshes and top lists', async () => {
    const all = await openFeed(daemon.httpPort, 'live-a');
    const queriesOnly = await openFeed(daemon.httpPort, 'live-a', 'queries');
    // Closed whatever happens: a feed left open keeps every event, the slow-consumer test's too.
    try {
      // Commit times seen in-process: the reference the feed is measured against.
      const commits: Array<{ at: number; sketches: number }> = [];
      daemon.engine.onCommit((e) => {
        if (e.runId === 'live-a' && e.batches > 0) commits.push({ at: Date.now(), sketches: e.sketches });
      });
      await streamSyntheticRun({
        address: `127.0.0.1:${daemon.grpcPort}`,
        runId: 'live-a',
        steps: 150,
        stepDelayMs: 4,
        queryRefreshEvery: 60,
      });
      await daemon.weighting.flushAll();
      await new Promise((r) => setTimeout(r, 1200));

      // Commit i is delivered by the first batches event whose running sketch total reaches commit i's.
      const batchEvents = all.events.filter((e) => e.event.type === 'batches');
      const latencies: number[] = [];
      let ev = 0;
      let evTotal = batchEvents[0]?.event.sketches ?? 0;
      let commitTotal = 0;
      for (const c of commits) {
        commitTotal += c.sketches;
        while (evTotal < commitTotal && ev + 1 < batchEvents.length) evTotal += batchEvents[++ev]!.event.sketches ?? 0;
        expect(evTotal).toBeGreaterThanOrEqual(commitTotal);
        latencies.push(batchEvents[ev]!.at - c.at);
      }
      latencies.sort((a, b) => a - b);
      const p50 = latencies[Math.floor(latencies.length / 2)]!;
      const max = latencies[latencies.length - 1]!;
      console.log(`live feed: ${commits.length} commits, ${batchEvents.length} batches events, latency p50 ${p50} ms, max ${max} ms`);
      expect(commits.length).toBeGreaterThan(10);
      expect(max).toBeLessThan(250);
      // Coalesced: fewer events than commits once the stream is busy.
      expect(batchEvents.length).toBeLessThanOrEqual(commits.length);

      const types = new Set(all.events.map((e) => e.event.type));
      for (const t of ['hello', 'batches', 'weights', 'harmful', 'queries', 'top']) expect(types).toContain(t);
      const harmful = all.events.filter((e) => e.event.type === 'harmful').flatMap((e) => e.event['samples'] as Array<{ id: string }>);
      const planted = new Set(harmful.filter((s) => !s.id.startsWith('clip-')).map((s) => s.id));
      console.log(`harmful crossings: ${harmful.length}, planted among them: ${planted.size}`);
      // Every planted clip crosses, and the crossings hold planted clips at well above their share of
      // the pool (8 %): how many clean clips cross on the way, while the early recomputes see few
      // samples, varies with the machine's load (docs/reliability.md, "Open items").
      expect(planted.size).toBe(syntheticClipIds(400, 0.08).harmful.size);
      expect(planted.size / harmful.length).toBeGreaterThan(3 * 0.08);
      const lastTop = all.events.filter((e) => e.event.type === 'top').at(-1)!.event as unknown as { harmful: Array<{ id: string }> };
      expect(lastTop.harmful.length).toBe(10);
      expect(lastTop.harmful[0]!.id.startsWith('clip-')).toBe(false);

      expect(new Set(queriesOnly.events.map((e) => e.event.type))).toEqual(new Set(['hello', 'queries']));
      expect(queriesOnly.events.filter((e) => e.event.type === 'queries').map((e) => e.event['version'])).toEqual([1, 2, 3]);
    } finally {
      all.ws.close();
      queriesOnly.ws.close();
    }
  });

  it("lists a run's first-time down-weightings, newest first, each with the weight its update gave it", async () => {
    // The reference, from the weighting service's own events: per newly down-weighted id, the
    // weight at its last position in that update.
    const expected: Array<{ id: string; weight: number; version: number }> = [];
    daemon.weighting.onUpdate((e) => {
      if (e.runId !== 'live-d') return;
      for (const id of e.newlyDownweighted) expected.push({ id, weight: e.weights[e.sampleIds.lastIndexOf(id)] ?? 1, version: e.version });
    });
    await streamSyntheticRun({ address: `127.0.0.1:${daemon.grpcPort}`, runId: 'live-d', steps: 120, stepDelayMs: 1 });
    await daemon.weighting.flushAll();
    const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/v1/runs/live-d/downweighted/recent?limit=1000`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { samples: Array<{ id: string; weight: number; version: number; currentWeight: number }> };
    expect(expected.length).toBeGreaterThan(3);
    expect(body.samples.map(({ id, weight, version }) => ({ id, weight, version }))).toEqual(expected.slice(-1000).reverse());
    const run = daemon.store.run('live-d')!;
    for (const s of body.samples) expect(s.currentWeight).toBe(run.samples.get(s.id)!.weight);
  });

  it('refuses unknown event types and paths', async () => {
    await expect(openFeed(daemon.httpPort, 'live-a', 'nonsense')).rejects.toThrow(/400/);
    const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/`);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
  });

  it('skips, then disconnects, a client that never reads, with memory bounded', async () => {
    // A raw socket that completes the WebSocket handshake and then never reads another byte.
    const stalled: Socket = tcpConnect(daemon.httpPort, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      stalled.once('connect', () => {
        stalled.write(
          'GET /v1/runs/live-a/live?types=queries HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
        );
        stalled.once('data', () => {
          stalled.pause();
          resolve();
        });
      });
      stalled.once('error', reject);
    });
    // A client that does read, counting events without keeping them (so this process's memory is the daemon's).
    const reader = new WebSocket(`ws://127.0.0.1:${daemon.httpPort}/v1/runs/live-a/live?types=queries`);
    let readerEvents = 0;
    reader.on('message', () => readerEvents++);
    await new Promise((r) => reader.once('open', r));
    const before = daemon.live.stats();
    stalled.on('error', () => undefined);

    const pad = 'x'.repeat(512 * 1024);
    const maxBufferedBytes = 1024 * 1024;
    let offeredBytes = 0;
    let maxBuffered = 0;
    let peakRss = 0;
    global.gc?.();
    const rss0 = process.memoryUsage().rss;
    const deadline = Date.now() + 8000;
    while (daemon.live.stats().dropped === before.dropped && Date.now() < deadline) {
      // A well-formed event made large by one long id.
      daemon.live.publish('live-a', 'queries', () => ({ version: 1, step: 0, queries: 1, ids: [pad], groups: [] }));
      offeredBytes += pad.length;
      maxBuffered = Math.max(maxBuffered, ...daemon.live.bufferedBytes());
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      await new Promise((r) => setTimeout(r, 10));
    }
    // The daemon ended the connection: once the stalled client reads again it sees the close.
    const closed = new Promise<boolean>((r) => {
      stalled.once('close', () => r(true));
      setTimeout(() => r(false), 3000);
    });
    stalled.resume();
    const gone = await closed;
    const after = daemon.live.stats();
    const rssGrowthMb = (peakRss - rss0) / 2 ** 20;
    console.log(
      `slow consumer: offered ${(offeredBytes / 2 ** 20).toFixed(0)} MiB, max buffered ${(maxBuffered / 2 ** 20).toFixed(2)} MiB, ` +
        `skipped ${after.skipped - before.skipped}, dropped ${after.dropped - before.dropped}, peak rss growth ${rssGrowthMb.toFixed(0)} MiB`,
    );
    expect(gone).toBe(true);
    expect(after.skipped - before.skipped).toBeGreaterThan(0);
    expect(after.dropped - before.dropped).toBe(1);
    // Bound: the per-client limit plus the one event that crossed it.
    expect(maxBuffered).toBeLessThanOrEqual(maxBufferedBytes + pad.length + 1024);
    expect(offeredBytes).toBeGreaterThan(100 * 2 ** 20);
    expect(rssGrowthMb).toBeLessThan(150);
    // The reading client kept up throughout and is still connected.
    expect(readerEvents).toBeGreaterThan(100);
    expect(reader.readyState).toBe(WebSocket.OPEN);
    const metrics = await (await fetch(`http://127.0.0.1:${daemon.httpPort}/metrics`)).text();
    expect(metrics).toMatch(/^motive_live_dropped_clients_total [1-9]/m);
    expect(metrics).toMatch(/^motive_live_skipped_events_total [1-9]/m);
    reader.close();
    stalled.destroy();
  });
});

describe('live feed with tokens configured', () => {
  it('needs a token that may read the run, as REST does, and so does the page', async () => {
    const daemon = await startTestDaemon({
      auth: {
        tokens: [
          { name: 'viewer-a', token: 'viewer-a-token-0123456789', role: 'viewer', runs: ['run-a'] },
          { name: 'viewer-all', token: 'viewer-all-token-0123456789', role: 'viewer', runs: null },
        ],
      },
    });
    try {
      await expect(openFeed(daemon.httpPort, 'run-a')).rejects.toThrow(/401/);
      await expect(openFeed(daemon.httpPort, 'run-b', 'top&token=viewer-a-token-0123456789')).rejects.toThrow(/403/);
      const ok = await openFeed(daemon.httpPort, 'run-a', 'top&token=viewer-a-token-0123456789');
      ok.ws.close();
      expect((await fetch(`http://127.0.0.1:${daemon.httpPort}/`)).status).toBe(401);
      expect((await fetch(`http://127.0.0.1:${daemon.httpPort}/?token=viewer-a-token-0123456789`)).status).toBe(200);
      expect((await fetch(`http://127.0.0.1:${daemon.httpPort}/metrics`)).status).toBe(401);
      const metrics = await fetch(`http://127.0.0.1:${daemon.httpPort}/metrics`, {
        headers: { authorization: 'Bearer viewer-all-token-0123456789' },
      });
      expect(metrics.status).toBe(200);
    } finally {
      await daemon.cleanup();
    }
  });
});
