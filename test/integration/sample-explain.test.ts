/**
 * The clip page's explain sentence (daemon/api/sample-detail.ts) on a real store: eight profiled
 * clips of known scores, the two lowest and two highest forming the groups at fraction 0.25, and
 * a jitter that falls as the score rises, so the run's summary names it; checked against the
 * groups and ranks worked out here, and a clip without a profile.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { sampleExplain } from '../../daemon/api/sample-detail.js';
import { Store, type QuerySetRecord } from '../../daemon/store/index.js';
import { tempDir } from '../helpers/daemon.js';

const dirs: Array<{ remove: () => void }> = [];
afterAll(() => dirs.forEach((d) => d.remove()));

describe('sample explain', () => {
  it('places a clip in its group and says which group its motion is nearer', async () => {
    const d = tempDir('motive-explain-');
    dirs.push(d);
    const store = await Store.open({ dataDir: d.path, mapSizeBytes: 1 << 30 });
    const run = await store.createRun({
      id: 'r',
      dim: 2,
      dtype: 'float32',
      projection: { kind: 'gaussian', seed: '1', dim: 2, fingerprint: 'fp' },
      scoreMode: 'dot',
      worldSize: 1,
      createdAtMs: 0,
    });
    const qs: QuerySetRecord = {
      version: 1,
      step: 0,
      ids: ['q'],
      groups: [],
      columns: Int32Array.of(run.queryColumn('q')),
      sketches: new Float32Array(2),
      receivedAtMs: 0,
    };
    await store.commit((tx) => {
      tx.putQuerySet('r', qs);
      tx.putRun(run);
    });
    run.addQuerySet(qs);
    // clip-k has score k (lr 1, one query, product k); 'plain' has no profile.
    const ids = ['clip-1', 'clip-2', 'clip-3', 'clip-4', 'clip-5', 'clip-6', 'clip-7', 'clip-8', 'plain'];
    const products = Float32Array.from(ids, (_, i) => i + 1);
    const sketches = new Float32Array(ids.length * 2);
    const lsn = await store.commit((tx) =>
      tx.appendBatch('r', {
        step: 1,
        lr: 1,
        sampleIds: ids,
        wire: new Uint8Array(sketches.buffer),
        wireDtype: 'float32',
        querySet: qs,
        products,
      }),
    );
    store.applyBatch(run, { sampleIds: ids, step: 1, lr: 1, sketches, querySet: qs, products }, lsn);
    await store.putProfiles(
      ids.slice(0, 8).map((id, i) => ({
        clipId: id,
        record: {
          hash: 'a'.repeat(64),
          profiledAtMs: 1,
          fields: {
            dynamic: true,
            dynamicDegree: 0.5,
            flowMean: 1,
            flowTop5: 2,
            jitter: 10 - i,
            reversals: 0,
            staticFraction: 0.1,
            sceneCuts: 0,
            frames: 16,
          },
        },
      })),
    );
    const at = (id: string): ReturnType<typeof sampleExplain> => sampleExplain(store, run, run.samples.get(id)!, 0.25);
    // Two of eight in each group; rank by score, 1 the lowest.
    expect(at('clip-1')).toMatchObject({ group: 'harmful', rank: 1, profiled: 8 });
    expect(at('clip-2')).toMatchObject({ group: 'harmful', rank: 2 });
    expect(at('clip-4')).toMatchObject({ group: 'middle', rank: 4 });
    expect(at('clip-8')).toMatchObject({ group: 'helpful', rank: 8 });
    // Harmful jitter mean (10 + 9) / 2, helpful (4 + 3) / 2; clip-4's 7 lies nearer 9.5 than 3.5.
    expect(at('clip-4').sentence).toContain(
      'Harmful clips have higher jitter (AUC 1.00); this clip’s 7 is nearer the harmful mean (9.500) than the helpful mean (3.500).',
    );
    expect(at('clip-7').sentence).toContain('this clip’s 4 is nearer the helpful mean (3.500) than the harmful mean (9.500).');
    expect(at('clip-1').summary).toEqual(['harmful clips have higher jitter (AUC 1.00, Spearman ρ with score -1.00)']);
    const plain = at('plain');
    expect(plain).toMatchObject({ group: null, rank: null, profiled: 8 });
    expect(plain.sentence).toMatch(/no motion profile: run `motive profile`/);
    await store.close();
  });
});
