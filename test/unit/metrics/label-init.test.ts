/**
 * Labelled counters are exposed at 0 for their known label values before the first increment
 * (docs/observability.md), so a dashboard panel reads 0 instead of "No data": every ingest error
 * code of the registry, every live-feed event type, and each run's per-run counters.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamSyntheticRun } from '../../../daemon/cli/synthetic-run.js';
import { ErrorCodes } from '../../../daemon/shared/index.js';
import { startTestDaemon } from '../../helpers/daemon.js';

/** `name{labels} value` lines of the exposition, as a map from the series to its value. */
function series(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.trim() === '') continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

describe('labelled counters start at 0', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  beforeAll(async () => {
    daemon = await startTestDaemon();
  });
  afterAll(async () => {
    await daemon.cleanup();
  });

  it('shows every ingest error code and live event type before anything happened', async () => {
    const s = series(await daemon.metrics.render());
    const codes = Object.keys(ErrorCodes).filter((c) => c.startsWith('MOTIVE_INGEST_'));
    expect(codes.length).toBeGreaterThan(10);
    for (const code of codes) expect(s.get(`motive_ingest_rejected_total{code="${code}"}`), code).toBe(0);
    for (const type of ['batches', 'weights', 'harmful', 'queries', 'top']) {
      expect(s.get(`motive_live_events_total{type="${type}"}`), type).toBe(0);
    }
  });

  it("shows a run's counters at 0 where nothing was counted, and keeps the counted ones", async () => {
    await streamSyntheticRun({ address: `127.0.0.1:${daemon.grpcPort}`, runId: 'r0', steps: 3, clips: 20, queryRefreshEvery: 1000 });
    const s = series(await daemon.metrics.render());
    // Batches were counted: the zero-initialisation leaves their count alone.
    expect(s.get('motive_batches_ingested_total{run="r0"}')).toBe(3);
    expect(s.get('motive_trainer_attach_events_total{run="r0",event="attach"}')).toBeGreaterThanOrEqual(1);
    // Nothing counted yet, shown at 0.
    for (const name of ['motive_weight_updates_total', 'motive_samples_downweighted_events_total']) {
      expect(s.has(`${name}{run="r0"}`), name).toBe(true);
    }
    expect(s.get('motive_ingest_rejected_total{code="MOTIVE_INGEST_BATCH_SHAPE"}')).toBe(0);
  });
});
