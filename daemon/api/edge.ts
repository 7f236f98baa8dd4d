/**
 * What every REST route shares, installed on the app before the resource plugins
 * (docs/security.md): per-route access checked from the token, query-string numbers, and errors
 * that leave as `{ code, message }` with the status from the error registry.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RunState, Store } from '../store/index.js';
import {
  ErrorCodes,
  MotiveError,
  httpToken,
  isMotiveError,
  type Action,
  type Authorizer,
  type Grant,
  type Logger,
} from '../shared/index.js';

/**
 * Per-route access: `config: { access: 'public' | Action }`. Without it, GET/HEAD routes need
 * `read` and every other method `admin`. Routes with a `:run` parameter also check the token's
 * run list. A route without one spans every run, so a token limited to some runs is refused there
 * unless the route shows each token only its own runs (`spansRuns: 'filtered'`: the run listing,
 * `/metrics`, the page): new routes are closed to such tokens until they say otherwise
 * (docs/security.md).
 */
export interface RouteAccess {
  readonly access?: 'public' | Action;
  readonly spansRuns?: 'filtered';
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The token's identity; null when auth is off. */
    grant: Grant | null;
  }
}

/** `message` with the value of every `token=` parameter it quotes replaced, so no error body echoes a secret. */
export function redactTokens(message: string): string {
  return message.replace(/([?&]token=)[^&#\s"'<>]*/gi, '$1<redacted>');
}

/** A plain decimal number, as a query string may carry one (no `Infinity`, `0x10`, blanks). */
const DECIMAL = /^-?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Turns the query parameters that the route's schema types as numbers into numbers, when they are
 * plain finite decimals; anything else stays a string, which the schema then refuses.
 */
function coerceQuery(req: FastifyRequest): void {
  const schema = req.routeOptions.schema?.querystring as { properties?: Record<string, { type?: unknown }> } | undefined;
  const props = schema?.properties;
  const query = req.query as Record<string, unknown> | undefined;
  if (props === undefined || query === undefined) return;
  for (const [name, prop] of Object.entries(props)) {
    const v = query[name];
    if ((prop.type !== 'integer' && prop.type !== 'number') || typeof v !== 'string' || !DECIMAL.test(v)) continue;
    const n = Number(v);
    if (Number.isFinite(n)) query[name] = n;
  }
}

/** The run a route names, or MOTIVE_API_RUN_NOT_FOUND. */
export function requireRun(store: Store, id: string): RunState {
  const run = store.run(id);
  if (run === undefined) throw new MotiveError('MOTIVE_API_RUN_NOT_FOUND', id);
  return run;
}

/** Installs the access check, the query coercion, the error handler and the not-found answer. */
export function installEdge(app: FastifyInstance, deps: { readonly auth: Authorizer; readonly log: Logger }): void {
  app.decorateRequest('grant', null);
  app.addHook('onRequest', async (req) => {
    if (!deps.auth.enabled) return;
    const access = (req.routeOptions.config as RouteAccess).access ?? (req.method === 'GET' || req.method === 'HEAD' ? 'read' : 'admin');
    if (access === 'public') return;
    const runId = (req.params as { run?: unknown } | undefined)?.run;
    const scoped = typeof runId === 'string' ? runId : undefined;
    const verdict = deps.auth.check(httpToken(req.headers, req.url), access, scoped);
    if (!verdict.ok) throw new MotiveError(verdict.reason === 'unauthenticated' ? 'MOTIVE_API_UNAUTHENTICATED' : 'MOTIVE_API_FORBIDDEN');
    const spans = (req.routeOptions.config as RouteAccess).spansRuns;
    if (verdict.grant?.runs != null && scoped === undefined && spans !== 'filtered' && !req.is404) {
      throw new MotiveError('MOTIVE_API_FORBIDDEN', 'this route spans every run; it needs a token not limited to runs');
    }
    req.grant = verdict.grant;
  });

  app.addHook('preValidation', async (req) => coerceQuery(req));

  app.setErrorHandler((err, _req, reply) => {
    if (isMotiveError(err)) return reply.status(err.status).send({ code: err.code, message: err.message });
    const e = err as { validation?: Array<{ instancePath?: string }>; validationContext?: string; statusCode?: number; message: string };
    if (e.validationContext === 'body' && e.validation?.some((v) => v.instancePath?.startsWith('/sketch') === true)) {
      return reply
        .status(400)
        .send({ code: 'MOTIVE_API_BAD_SKETCH', message: `${ErrorCodes.MOTIVE_API_BAD_SKETCH.message}: ${e.message}` });
    }
    if (e.validation !== undefined || (e.statusCode !== undefined && e.statusCode < 500)) {
      return reply.status(e.statusCode ?? 400).send({ code: 'MOTIVE_API_BAD_REQUEST', message: redactTokens(e.message) });
    }
    deps.log.error({ err }, 'request failed');
    return reply.status(500).send({ code: 'MOTIVE_API_INTERNAL', message: ErrorCodes.MOTIVE_API_INTERNAL.message });
  });

  // Unknown routes answer like every other error; the path is named without its query string,
  // which may hold a token.
  app.setNotFoundHandler(async (req, reply) => {
    const path = req.url.split('?')[0]!.slice(0, 256);
    return reply
      .status(404)
      .send({ code: 'MOTIVE_API_NOT_FOUND', message: new MotiveError('MOTIVE_API_NOT_FOUND', `${req.method} ${path}`).message });
  });
}
