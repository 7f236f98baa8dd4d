/**
 * A real Prometheus scrapes a real daemon on loopback while a run streams. Checks: promtool accepts
 * /metrics; every PromQL expression in every dashboard (variables substituted) returns a
 * non-empty result from that Prometheus; every Infinity panel's URL returns JSON rows from the daemon.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { streamSyntheticRun } from '../../daemon/cli/synthetic-run.js';
import { freePort, startTestDaemon, tempDir } from '../helpers/daemon.js';
import { INFINITY_TYPE, allPanels, clipLink, loadDashboards, substitute } from '../helpers/dashboards.js';
import { haveBinary } from '../helpers/system-binary.js';

const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';
const RUN = 'prom-run';
const have = haveBinary(PROMETHEUS, 'prometheus') && haveBinary(PROMTOOL, 'prometheus');

interface PromResponse {
  status: string;
  data: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> };
  error?: string;
}

describe.skipIf(!have)('Prometheus and the dashboards', () => {
  let daemon: Awaited<ReturnType<typeof startTestDaemon>>;
  let prom: ChildProcess | undefined;
  let promUrl = '';
  const promDir = tempDir('motive-prom-');
  const stop = new AbortController();
  let streaming: Promise<unknown> = Promise.resolve();

  const query = async (expr: string): Promise<PromResponse> => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return (await res.json()) as PromResponse;
  };

  beforeAll(async () => {
    daemon = await startTestDaemon({ weights: { minSeen: 2, intervalMs: 200 } });
    streaming = streamSyntheticRun({
      address: `127.0.0.1:${daemon.grpcPort}`,
      runId: RUN,
      steps: Infinity,
      stepDelayMs: 8,
      queryRefreshEvery: 150,
      signal: stop.signal,
    });
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    const config = join(promDir.path, 'prometheus.yml');
    writeFileSync(
      config,
      `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: motive\n    static_configs:\n      - targets: ['127.0.0.1:${daemon.httpPort}']\n`,
    );
    prom = spawn(
      PROMETHEUS,
      [`--config.file=${config}`, `--storage.tsdb.path=${join(promDir.path, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let log = '';
    prom.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    // Ready, then enough scrapes that rates over a 15 s window and the second query refresh are in.
    const deadline = Date.now() + 40_000;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`Prometheus did not collect enough scrapes: ${log}`);
      await new Promise((r) => setTimeout(r, 500));
      try {
        const scrapes = await query('count_over_time(up{job="motive"}[1m])');
        const version = await query(`motive_query_set_version{run="${RUN}"}`);
        const n = Number(scrapes.data.result[0]?.value[1] ?? 0);
        if (n >= 5 && Number(version.data.result[0]?.value[1] ?? 0) >= 2) break;
      } catch {
        // not up yet
      }
    }
  }, 60_000);

  afterAll(async () => {
    stop.abort();
    await streaming.catch(() => undefined);
    if (prom !== undefined && prom.exitCode === null) {
      const exited = new Promise((r) => prom!.once('exit', r));
      prom.kill('SIGTERM');
      await exited;
    }
    await daemon.cleanup();
    promDir.remove();
  });

  it('serves /metrics that promtool accepts', async () => {
    const text = await (await fetch(`http://127.0.0.1:${daemon.httpPort}/metrics`)).text();
    const check = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
    // Labels stay bounded: no sample id appears anywhere in the exposition.
    expect(text).not.toMatch(/clip-\d{4}|camera-shake-\d/);
    // Scraped successfully: at a 1 s interval (which caps the scrape timeout at 1 s) one scrape
    // can time out while the whole suite loads the machine, so most of the last minute's count.
    expect((await query('max_over_time(up{job="motive"}[1m])')).data.result[0]?.value[1]).toBe('1');
    expect(Number((await query('avg_over_time(up{job="motive"}[1m])')).data.result[0]?.value[1])).toBeGreaterThanOrEqual(0.5);
  });

  it('offers the run to the dashboards run variable (label_values)', async () => {
    const res = (await (await fetch(`${promUrl}/api/v1/label/run/values?match[]=motive_samples_tracked`)).json()) as { data: string[] };
    expect(res.data).toContain(RUN);
  });

  const vars = { run: RUN, __rate_interval: '15s', __interval: '1s', __range: '1m', DS_PROMETHEUS: 'prometheus', DS_INFINITY: 'infinity' };

  it('answers every PromQL expression of every dashboard with data', async () => {
    let checked = 0;
    const empty: string[] = [];
    for (const d of loadDashboards()) {
      for (const p of allPanels(d)) {
        if (p.datasource?.type === INFINITY_TYPE) continue;
        for (const t of p.targets ?? []) {
          const expr = substitute(t.expr ?? '', vars);
          const res = await query(expr);
          expect(res.status, `${d.file} "${p.title}" ${expr}: ${res.error ?? ''}`).toBe('success');
          if (res.data.result.length === 0) empty.push(`${d.file} "${p.title}": ${expr}`);
          checked++;
        }
      }
    }
    expect(empty).toEqual([]);
    expect(checked).toBeGreaterThan(30);
  });

  it('answers every Infinity panel URL with JSON rows from the daemon, and the clip links with the clip page', async () => {
    let checked = 0;
    let linked = 0;
    for (const d of loadDashboards()) {
      for (const p of allPanels(d)) {
        if (p.datasource?.type !== INFINITY_TYPE) continue;
        for (const t of p.targets ?? []) {
          const url = substitute(t.url ?? '', vars);
          const res = await fetch(`http://127.0.0.1:${daemon.httpPort}${url}`);
          expect(res.status, url).toBe(200);
          expect(res.headers.get('content-type')).toMatch(/application\/json/);
          const body = (await res.json()) as Record<string, unknown>;
          const rows = t.root_selector === undefined ? body : body[t.root_selector];
          expect(Array.isArray(rows), url).toBe(true);
          expect((rows as unknown[]).length, url).toBeGreaterThan(0);
          checked++;
          // The clip column's data link opens the clip page of the first row's clip.
          const link = clipLink(p);
          if (link === undefined) continue;
          const id = (rows as Array<{ id: string }>)[0]!.id;
          const href = substitute(link, { ...vars, motive_url: `http://127.0.0.1:${daemon.httpPort}`, '__value.raw': id });
          expect(href).toBe(`http://127.0.0.1:${daemon.httpPort}/runs/${RUN}/clips/${encodeURIComponent(id)}`);
          const page = await fetch(href);
          expect(page.status, href).toBe(200);
          expect(page.headers.get('content-type')).toMatch(/text\/html/);
          linked++;
        }
      }
    }
    expect(checked).toBe(3);
    expect(linked).toBe(3);
  });
});
