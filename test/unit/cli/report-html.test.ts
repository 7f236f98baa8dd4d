/**
 * The run report's HTML (daemon/cli/report-html.ts): histogram counts against a plain count, and
 * hostile clip ids and labels escaped, so a report never carries markup or a script it did not write.
 */
import { describe, expect, it } from 'vitest';
import { esc, histogram, renderReport, type ReportClip } from '../../../daemon/cli/report-html.js';

describe('report histogram', () => {
  it('counts each finite value in its bin, the top edge in the last bin', () => {
    const values = Float64Array.from([0, 0.1, 0.25, 0.5, 0.75, 0.99, 1, NaN, Infinity, -0.5, 2]);
    const counts = histogram(values, 4, 0, 1);
    // Plainly: bin = floor(v / 0.25), clamped to [0, 3]; NaN and ±Infinity left out.
    const expected = [0, 0, 0, 0];
    for (const v of values) if (Number.isFinite(v)) expected[Math.min(3, Math.max(0, Math.floor(v / 0.25)))]!++;
    expect(counts).toEqual(expected);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(9);
  });
});

describe('report escaping', () => {
  it('escapes ids, descriptors and configuration values', () => {
    expect(esc(`<a href="x">'&'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
    const hostile = '<script>alert(1)</script>';
    const clip: ReportClip = { id: hostile, score: -1, weight: 0.5, seen: 3, votes: 0, motion: null, previews: {} };
    const html = renderReport({
      run: { id: `run-${hostile}`, samples: 1, lastStep: 3, weightsVersion: 1, scoreMode: hostile },
      daemon: 'motived/test',
      generatedAt: '2026-01-01T00:00:00.000Z',
      scores: Float64Array.from([-1]),
      weights: Float64Array.from([0.5]),
      harmful: [clip],
      helpful: [clip],
      explain: null,
      evaluation: null,
    });
    expect(html).not.toContain('<script');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).not.toMatch(/https?:/);
  });
});
