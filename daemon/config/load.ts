import { readFileSync } from 'node:fs';
import { Value } from '@sinclair/typebox/value';
import { ConfigSchema, type MotiveConfig } from './schema.js';
import { MotiveError } from '../shared/index.js';

type Json = Record<string, unknown>;

/** Environment variables and the config path each one sets. */
const ENV_OVERRIDES: ReadonlyArray<readonly [string, readonly string[], 'string' | 'integer']> = [
  ['MOTIVE_DATA_DIR', ['dataDir'], 'string'],
  ['MOTIVE_LOG_LEVEL', ['logLevel'], 'string'],
  ['MOTIVE_GRPC_HOST', ['grpc', 'host'], 'string'],
  ['MOTIVE_GRPC_PORT', ['grpc', 'port'], 'integer'],
  ['MOTIVE_HTTP_HOST', ['http', 'host'], 'string'],
  ['MOTIVE_HTTP_PORT', ['http', 'port'], 'integer'],
  ['MOTIVE_TRAINER_TOKEN', ['auth', 'trainerToken'], 'string'],
  ['MOTIVE_WEIGHTS_POLICY', ['weights', 'policy'], 'string'],
];

function setPath(target: Json, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next === 'object' && next !== null && !Array.isArray(next)) node = next as Json;
    else {
      const created: Json = {};
      node[key] = created;
      node = created;
    }
  }
  node[path[path.length - 1] as string] = value;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * Builds the configuration: defaults ← file (`MOTIVE_CONFIG` or `path`) ← `MOTIVE_*` env ←
 * `overrides`; validated once against {@link ConfigSchema}, then frozen. Throws
 * `MOTIVE_CONFIG_INVALID` naming the offending field.
 */
export function loadConfig(options: { path?: string; env?: NodeJS.ProcessEnv; overrides?: Json } = {}): MotiveConfig {
  const env = options.env ?? process.env;
  const raw: Json = {};
  const path = options.path ?? env['MOTIVE_CONFIG'];
  if (path !== undefined && path !== '') {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new MotiveError('MOTIVE_CONFIG_FILE', path, { cause: err });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new MotiveError('MOTIVE_CONFIG_FILE', `${path} is not valid JSON`, { cause: err });
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new MotiveError('MOTIVE_CONFIG_INVALID', `${path} must hold a JSON object`);
    }
    Object.assign(raw, parsed);
  }
  for (const [name, cfgPath, kind] of ENV_OVERRIDES) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    if (kind === 'integer') {
      if (!/^-?\d+$/.test(value)) throw new MotiveError('MOTIVE_CONFIG_INVALID', `${name} must be an integer, got "${value}"`);
      setPath(raw, cfgPath, Number(value));
    } else setPath(raw, cfgPath, value);
  }
  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    const current = raw[key];
    if (typeof value === 'object' && value !== null && !Array.isArray(value) && typeof current === 'object' && current !== null) {
      raw[key] = { ...(current as Json), ...(value as Json) };
    } else raw[key] = value;
  }
  const withDefaults = Value.Default(ConfigSchema, structuredClone(raw));
  const errors = [...Value.Errors(ConfigSchema, withDefaults)];
  const first = errors[0];
  if (first !== undefined) {
    const field = first.path === '' ? '(root)' : first.path.slice(1).replaceAll('/', '.');
    throw new MotiveError('MOTIVE_CONFIG_INVALID', `${field}: ${first.message}`);
  }
  return deepFreeze(withDefaults as MotiveConfig);
}
