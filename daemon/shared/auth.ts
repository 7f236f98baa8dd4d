/**
 * Bearer tokens with roles, enforced alike on gRPC, REST, WebSocket and /metrics.
 *
 * - trainer: attach a Attach stream and write batches / query sets;
 * - viewer: read REST, the live feed and metrics;
 * - admin: everything, including deleting runs and taking backups.
 *
 * A token may be limited to a list of runs. Tokens are compared in constant time (each is hashed
 * to 32 bytes and every configured token is compared, without early exit) and never logged.
 * With no token configured, everything is open (the daemon binds 127.0.0.1 by default).
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export type Role = 'trainer' | 'viewer' | 'admin';

/** What a request wants to do. */
export type Action = 'attach' | 'read' | 'admin';

export interface TokenSpec {
  readonly name: string;
  readonly token: string;
  readonly role: Role;
  readonly runs: readonly string[] | null;
}

/** The identity behind a presented token (no secret in it). */
export interface Grant {
  readonly name: string;
  readonly role: Role;
  readonly runs: readonly string[] | null;
}

/** The verdict for one request. */
export type AuthResult = { ok: true; grant: Grant | null } | { ok: false; reason: 'unauthenticated' | 'forbidden' };

const ALLOWED: Readonly<Record<Role, readonly Action[]>> = {
  trainer: ['attach'],
  viewer: ['read'],
  admin: ['attach', 'read', 'admin'],
};

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export class Authorizer {
  private readonly entries: ReadonlyArray<{ hash: Buffer; grant: Grant }>;

  constructor(tokens: readonly TokenSpec[], trainerToken: string | null) {
    const all: TokenSpec[] = [...tokens];
    if (trainerToken !== null) all.push({ name: 'trainer', token: trainerToken, role: 'trainer', runs: null });
    this.entries = all.map((t) => ({ hash: digest(t.token), grant: { name: t.name, role: t.role, runs: t.runs } }));
  }

  /** True when tokens are configured, so every request must present one. */
  get enabled(): boolean {
    return this.entries.length > 0;
  }

  /** The grant of `token`, or undefined. Constant time in the token's content. */
  identify(token: string | undefined): Grant | undefined {
    const given = digest(token ?? '');
    let found: Grant | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(e.hash, given) && found === undefined) found = e.grant;
    }
    return token === undefined || token === '' ? undefined : found;
  }

  /** May `token` do `action` (on `runId`, when the request names a run)? */
  check(token: string | undefined, action: Action, runId?: string): AuthResult {
    if (!this.enabled) return { ok: true, grant: null };
    const grant = this.identify(token);
    if (grant === undefined) return { ok: false, reason: 'unauthenticated' };
    if (!ALLOWED[grant.role].includes(action)) return { ok: false, reason: 'forbidden' };
    if (runId !== undefined && grant.runs !== null && !grant.runs.includes(runId)) return { ok: false, reason: 'forbidden' };
    return { ok: true, grant };
  }

  /** Whether `grant` may see `runId` (for listings that span runs). */
  static canSeeRun(grant: Grant | null, runId: string): boolean {
    return grant === null || grant.runs === null || grant.runs.includes(runId);
  }
}

/** The token of an HTTP request: `Authorization: Bearer <t>`, else the `token` query parameter. */
export function httpToken(headers: Record<string, string | string[] | undefined>, url: string): string | undefined {
  const h = headers['authorization'];
  const value = Array.isArray(h) ? h[0] : h;
  if (value !== undefined) {
    const m = /^Bearer\s+(.+)$/i.exec(value.trim());
    if (m !== null) return m[1];
  }
  const q = url.indexOf('?');
  if (q < 0) return undefined;
  return new URLSearchParams(url.slice(q + 1)).get('token') ?? undefined;
}
