/**
 * REST routes of motion profiles, the explain summary and the Arrow export:
 *
 * - `POST /v1/profiles` `{ profiles: [profile] }` stores profiles (from `motive profile`);
 * - `POST /v1/profiles/lookup` `{ clips: [{ id, hash }], previews? }` → `{ known: [id] }`, the clips
 *   already profiled from a file with that hash (with `previews: true`, and whose three previews are
 *   stored), so an interrupted profiling pass resumes;
 * - `GET /v1/profiles/:id` → the clip's newest profile;
 * - `GET /v1/runs/:run/explain?fraction=F` → which descriptors separate harmful from helpful clips;
 * - `GET /v1/runs/:run/export.arrow` → every sample as an Arrow IPC stream (schemas/samples.arrow.md).
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { MotiveError } from '../shared/index.js';
import type { RunViews } from '../influence/index.js';
import type { ClipProfileRecord, Store } from '../store/index.js';
import { arrowExport } from '../export/index.js';
import { DESCRIPTOR_NAMES, PREVIEW_KINDS, explain, type MotionDescriptors } from '../motion/index.js';
import { errorSchema, runParams, tokenParam } from './schemas.js';
import { explainSchema, profileSchema } from './motion-schemas.js';
import { requireRun } from './edge.js';

export { sampleMotion, type SampleMotion } from './sample-motion.js';

export interface MotionRoutesDeps {
  readonly store: Store;
  readonly views: RunViews;
  /** The daemon's `score.votePercentile`, recorded in exports. */
  readonly votePercentile: number;
}

export interface MotionRoutesOptions {
  /** Most profiles in one POST (default 10000). */
  readonly maxProfilesPerRequest?: number;
  /** Rows per Arrow record batch (default 4096). */
  readonly exportBatchRows?: number;
}

function descriptorsOf(p: ClipProfileRecord): MotionDescriptors | undefined {
  const f = p.fields;
  for (const name of DESCRIPTOR_NAMES) if (f[name] === undefined) return undefined;
  return f as unknown as MotionDescriptors;
}

type ProfileBody = Record<string, number | boolean | string> & { id: string; hash: string; profiledAtMs: number };

/** The error answers of the motion routes. */
const errors = { 400: errorSchema, 404: errorSchema };

/** Registers the routes on the REST app: one plugin for profiles, one for a run's explain and export. */
export function registerMotionRoutes(app: FastifyInstance, deps: MotionRoutesDeps, options: MotionRoutesOptions = {}): void {
  void app.register(profileRoutes, { store: deps.store, maxProfiles: options.maxProfilesPerRequest ?? 10_000 });
  void app.register(runMotionRoutes, { deps, options });
}

/** `/v1/profiles`: store, look up and read clips' motion profiles. */
const profileRoutes: FastifyPluginAsync<{ store: Store; maxProfiles: number }> = async (app, { store, maxProfiles }) => {
  app.post<{ Body: { profiles: ProfileBody[] } }>('/v1/profiles', {
    schema: {
      body: {
        type: 'object',
        properties: { profiles: { type: 'array', items: profileSchema, maxItems: maxProfiles } },
        required: ['profiles'],
        additionalProperties: false,
      },
      response: { 200: { type: 'object', properties: { stored: { type: 'integer' } }, required: ['stored'] }, ...errors },
    },
    handler: async (req) => {
      const entries = req.body.profiles.map((p) => {
        const { id, hash, profiledAtMs, ...fields } = p;
        return { clipId: id, record: { hash, profiledAtMs, fields } };
      });
      await store.putProfiles(entries);
      return { stored: entries.length };
    },
  });

  app.post<{ Body: { clips: Array<{ id: string; hash: string }>; previews: boolean } }>('/v1/profiles/lookup', {
    // A query sent as POST (the list can be long): it reads, so read access is enough.
    config: { access: 'read' as const },
    schema: {
      body: {
        type: 'object',
        properties: {
          clips: {
            type: 'array',
            maxItems: maxProfiles,
            items: {
              type: 'object',
              properties: { id: { type: 'string', minLength: 1 }, hash: { type: 'string' } },
              required: ['id', 'hash'],
              additionalProperties: false,
            },
          },
          previews: { type: 'boolean', default: false },
        },
        required: ['clips'],
        additionalProperties: false,
      },
      response: {
        200: { type: 'object', properties: { known: { type: 'array', items: { type: 'string' } } }, required: ['known'] },
        ...errors,
      },
    },
    handler: async (req) => ({
      known: req.body.clips
        .filter((c) => store.hasProfile(c.id, c.hash) && (!req.body.previews || store.hasPreviews(c.id, c.hash, PREVIEW_KINDS)))
        .map((c) => c.id),
    }),
  });

  app.get<{ Params: { id: string } }>('/v1/profiles/:id', {
    schema: {
      params: { type: 'object', properties: { id: { type: 'string', minLength: 1, maxLength: 1024 } }, required: ['id'] },
      response: { 200: profileSchema, ...errors },
    },
    handler: async (req) => {
      const p = store.profile(req.params.id);
      if (p === undefined) throw new MotiveError('MOTIVE_API_PROFILE_NOT_FOUND', req.params.id);
      return { ...p.fields, id: req.params.id, hash: p.hash, profiledAtMs: p.profiledAtMs };
    },
  });
};

/** A run's `/explain` and `/export.arrow`. */
const runMotionRoutes: FastifyPluginAsync<{ deps: MotionRoutesDeps; options: MotionRoutesOptions }> = async (app, { deps, options }) => {
  const { store, views } = deps;
  app.get<{ Params: { run: string }; Querystring: { fraction: number } }>('/v1/runs/:run/explain', {
    schema: {
      params: runParams,
      querystring: {
        type: 'object',
        properties: { fraction: { type: 'number', exclusiveMinimum: 0, maximum: 0.5, default: 0.25 }, token: tokenParam },
        additionalProperties: false,
      },
      response: { 200: explainSchema, ...errors },
    },
    handler: async (req) => {
      const run = requireRun(store, req.params.run);
      const rows = [];
      for (const s of run.samples.values()) {
        const p = store.profile(s.id);
        const descriptors = p === undefined ? undefined : descriptorsOf(p);
        if (descriptors !== undefined) rows.push({ score: run.score(s), descriptors });
      }
      return { run: run.info.id, samples: run.samples.size, ...explain(rows, req.query.fraction) };
    },
  });

  app.get<{ Params: { run: string } }>('/v1/runs/:run/export.arrow', {
    schema: { params: runParams, response: { 400: errorSchema, 404: errorSchema } },
    handler: async (req, reply) => {
      const run = requireRun(store, req.params.run);
      const source = arrowExport(run, store, views, {
        votePercentile: deps.votePercentile,
        ...(options.exportBatchRows === undefined ? {} : { batchRows: options.exportBatchRows }),
      });
      // Readable.from pulls the next batch only when the socket has room: backpressure end to end.
      const body = Readable.from(source, { objectMode: false, highWaterMark: 1 });
      return reply
        .header('content-type', 'application/vnd.apache.arrow.stream')
        .header('content-disposition', `attachment; filename="${encodeURIComponent(run.info.id)}.arrow"`)
        .send(body);
    },
  });
};
