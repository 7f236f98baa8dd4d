/** Reading the Grafana dashboards in dashboards/: panels (rows flattened), queries, variables. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './daemon.js';

export const DASHBOARD_DIR = join(REPO_ROOT, 'dashboards');
export const INFINITY_TYPE = 'yesoreyeram-infinity-datasource';

export interface DsRef {
  type?: string;
  uid?: string;
}

export interface Target {
  refId: string;
  datasource?: DsRef;
  expr?: string;
  url?: string;
  root_selector?: string;
  [k: string]: unknown;
}

export interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: DsRef;
  targets?: Target[];
  panels?: Panel[];
  fieldConfig?: { defaults?: { unit?: string } };
}

export interface Dashboard {
  file: string;
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Array<{ name: string; type: string; query?: unknown; datasource?: DsRef; definition?: string }> };
}

export function loadDashboards(): Dashboard[] {
  return readdirSync(DASHBOARD_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => ({ ...(JSON.parse(readFileSync(join(DASHBOARD_DIR, f), 'utf8')) as Omit<Dashboard, 'file'>), file: f }));
}

/** Every panel, rows' nested panels included; row panels themselves are excluded. */
export function allPanels(d: Dashboard): Panel[] {
  const out: Panel[] = [];
  const walk = (ps: Panel[]): void => {
    for (const p of ps) {
      if (p.type !== 'row') out.push(p);
      if (p.panels !== undefined) walk(p.panels);
    }
  };
  walk(d.panels);
  return out;
}

/** Substitutes Grafana template variables the way Grafana would for a single run over a short range. */
export function substitute(text: string, vars: Record<string, string>): string {
  return text.replace(
    /\$\{([\w.]+)(?::(\w+))?\}|\$(\w+)/g,
    (whole, a: string | undefined, format: string | undefined, b: string | undefined) => {
      const value = vars[a ?? b ?? ''];
      if (value === undefined) return whole;
      return format === 'percentencode' ? encodeURIComponent(value) : value;
    },
  );
}

/** The data link of a table panel's `clip` column (dashboards/README.md), if it has one. */
export function clipLink(p: Panel): string | undefined {
  const overrides = (
    p.fieldConfig as { overrides?: Array<{ matcher: { options: string }; properties: Array<{ id: string; value: unknown }> }> } | undefined
  )?.overrides;
  const links = overrides?.find((o) => o.matcher.options === 'clip')?.properties.find((x) => x.id === 'links')?.value as
    Array<{ url: string }> | undefined;
  return links?.[0]?.url;
}
