/**
 * The REST edge (fastify). `buildApi` makes the app and registers its parts: what every route
 * shares (edge.ts), then one plugin per resource, each with its JSON Schemas for input and output
 * beside it: runs-routes.ts, samples-routes.ts, attribute-routes.ts, admin-routes.ts. The daemon
 * registers the live feed, the metrics, the motion and preview routes on the same app.
 */
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Authorizer, Logger } from '../shared/index.js';
import type { InfluenceEngine, RunViews } from '../influence/index.js';
import type { Store } from '../store/index.js';
import type { WeightingService } from '../weighting/index.js';
import { installEdge, redactTokens } from './edge.js';
import { runsRoutes } from './runs-routes.js';
import { samplesRoutes } from './samples-routes.js';
import { attributeRoutes } from './attribute-routes.js';
import { adminRoutes } from './admin-routes.js';

export interface ApiDeps {
  readonly store: Store;
  readonly engine: InfluenceEngine;
  readonly views: RunViews;
  readonly weighting: WeightingService;
  readonly log: Logger;
  /** Tokens and roles; every route but `/healthz` needs a token when any is configured. */
  readonly auth: Authorizer;
  /** Attached trainer streams per run (from ingest). */
  readonly attachedCounts: () => Map<string, number>;
  /** Ends the trainer streams of a deleted run. */
  readonly detachRun: (runId: string) => void;
  readonly version: string;
  /** The store's directory: backups may not go into it. */
  readonly dataDir: string;
}

export interface ApiOptions {
  readonly maxListLimit: number;
  /** Body limit of POST requests in bytes; a k-dim sketch as JSON needs about 24·k bytes. */
  readonly bodyLimitBytes: number;
  /** Serve HTTPS with this PEM key pair. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
}

/** Builds the fastify app (not listening). Extra route plugins can be registered by the caller. */
export function buildApi(deps: ApiDeps, options: ApiOptions): FastifyInstance {
  const base = {
    logger: false,
    // An API, not a form handler: JSON bodies are taken as sent (no `"1e3"` → 1000, `null` → 0,
    // `true` → 1), and an unknown property is refused, not dropped. Query strings are strings:
    // `coerceQuery` turns plain decimal numbers into numbers first.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false } },
    bodyLimit: options.bodyLimitBytes,
    // Sample ids may be as long as the wire allows (limits.maxSampleIdBytes), URL-encoded.
    routerOptions: { maxParamLength: 4096 },
    // Router-level failures (bad URL escapes and the like) answer with a registered code too.
    frameworkErrors: (err: FastifyError, _req: FastifyRequest, reply: FastifyReply) => {
      const status = err.statusCode !== undefined && err.statusCode < 500 ? err.statusCode : 400;
      void reply.code(status).send({ code: 'MOTIVE_API_BAD_REQUEST', message: redactTokens(err.message) });
    },
  };
  const app =
    options.tls === undefined
      ? Fastify(base)
      : (Fastify({ ...base, https: { cert: options.tls.cert, key: options.tls.key } }) as unknown as FastifyInstance);
  installEdge(app, deps);
  void app.register(adminRoutes, deps);
  void app.register(runsRoutes, deps);
  void app.register(samplesRoutes, { deps, maxListLimit: options.maxListLimit });
  void app.register(attributeRoutes, { deps, maxListLimit: options.maxListLimit });
  return app;
}
