/** Lint of the Grafana dashboards: ids, datasource variables, units, variables, schema version. */
import { describe, expect, it } from 'vitest';
import { INFINITY_TYPE, allPanels, clipLink, loadDashboards } from '../../helpers/dashboards.js';

const dashboards = loadDashboards();
const DS_VARIABLE = /^\$\{?DS_[A-Z_]+\}?$/;

describe('dashboards', () => {
  it('exist: an overview and a run dashboard', () => {
    expect(dashboards.map((d) => d.uid).sort()).toEqual(['motive-overview', 'motive-run']);
  });

  for (const d of dashboards) {
    describe(d.file, () => {
      const panels = allPanels(d);
      const vars = d.templating.list;

      it('has schemaVersion >= 39, a DS_PROMETHEUS datasource variable and a run variable from label_values', () => {
        expect(d.schemaVersion).toBeGreaterThanOrEqual(39);
        expect(vars.find((v) => v.name === 'DS_PROMETHEUS')).toMatchObject({ type: 'datasource', query: 'prometheus' });
        const run = vars.find((v) => v.name === 'run');
        expect(run?.type).toBe('query');
        expect(JSON.stringify(run?.query)).toMatch(/label_values\(\w+, *run\)/);
        expect(run?.datasource?.uid).toMatch(DS_VARIABLE);
      });

      it('has unique panel ids (rows included)', () => {
        const ids: number[] = [];
        const walk = (ps: typeof d.panels): void => {
          for (const p of ps) {
            ids.push(p.id);
            if (p.panels) walk(p.panels);
          }
        };
        walk(d.panels);
        expect(ids.every((id) => Number.isInteger(id))).toBe(true);
        expect(new Set(ids).size).toBe(ids.length);
      });

      it('names every datasource through a variable, never a hard-coded uid', () => {
        const refs = [
          ...panels.flatMap((p) => [p.datasource, ...(p.targets ?? []).map((t) => t.datasource)]),
          ...vars.map((v) => v.datasource),
        ];
        for (const ref of refs.filter((r) => r !== undefined)) expect(ref.uid, JSON.stringify(ref)).toMatch(DS_VARIABLE);
        for (const p of panels) {
          expect(p.datasource, p.title).toBeDefined();
          for (const t of p.targets ?? []) expect(t.datasource, `${p.title} ${t.refId}`).toBeDefined();
        }
        // The raw text holds no uid other than variables either (e.g. inside links or annotations).
        const raw = JSON.stringify(d);
        for (const m of raw.matchAll(/"uid":"([^"]*)"/g)) if (m[1] !== d.uid) expect(m[1]).toMatch(DS_VARIABLE);
        if (panels.some((p) => p.datasource?.type === INFINITY_TYPE)) {
          expect(vars.find((v) => v.name === 'DS_INFINITY')).toMatchObject({ type: 'datasource', query: INFINITY_TYPE });
        }
      });

      it('sets a unit on every panel', () => {
        for (const p of panels) expect(p.fieldConfig?.defaults?.unit, p.title).toMatch(/\S/);
      });

      it('links the clip column of every clip table to the clip page of the daemon', () => {
        const tables = panels.filter(
          (p) => p.type === 'table' && (p.targets ?? []).some((t) => JSON.stringify(t.columns ?? []).includes('"selector":"id"')),
        );
        if (tables.length === 0) return;
        expect(vars.find((v) => v.name === 'motive_url')).toMatchObject({ type: 'textbox' });
        for (const p of tables)
          expect(clipLink(p), p.title).toBe('${motive_url}/runs/${run:percentencode}/clips/${__value.raw:percentencode}');
      });

      it('gives every panel at least one query, with unique refIds', () => {
        for (const p of panels) {
          const targets = p.targets ?? [];
          expect(targets.length, p.title).toBeGreaterThan(0);
          expect(new Set(targets.map((t) => t.refId)).size).toBe(targets.length);
          for (const t of targets) {
            if (p.datasource?.type === INFINITY_TYPE) expect(t.url, p.title).toMatch(/^\/v1\//);
            else expect(t.expr, p.title).toMatch(/\S/);
          }
        }
      });
    });
  }
});
