/**
 * Clip previews (docs/api.md, docs/motion-profiling.md "Previews"):
 *
 * - `POST /v1/profiles/previews` `{ previews: [{ id, hash, kind, data }] }` stores previews
 *   (`data` base64) beside the profile of `[id, hash]` (from `motive profile`, admin access);
 * - `GET /v1/runs/:run/samples/:id/preview?kind=strip|anim|flow` serves the preview of the clip's
 *   newest profile, with `ETag`, `Last-Modified` and `Cache-Control`, answering conditional
 *   requests with 304. Run-scoped like the other sample routes: the sample must be in the run.
 */
import type { FastifyInstance } from 'fastify';
import { MotiveError } from '../shared/index.js';
import type { Store } from '../store/index.js';
import { MAX_PREVIEW_BYTES, PREVIEW_KINDS, PREVIEW_TYPES, type PreviewKind } from '../motion/index.js';
import { errorSchema, sampleParams, tokenParam } from './schemas.js';

export interface PreviewRoutesOptions {
  /** Most previews in one POST (default 64). */
  readonly maxPreviewsPerRequest?: number;
}

/** How long a browser may reuse a preview without asking again (s); after that it revalidates. */
export const PREVIEW_MAX_AGE_S = 300;

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Whether `data` starts as a file of the kind's media type must (PNG, or RIFF…WEBP). */
export function looksLike(kind: PreviewKind, data: Uint8Array): boolean {
  if (PREVIEW_TYPES[kind] === 'image/png') return PNG_SIGNATURE.every((b, i) => data[i] === b);
  const ascii = (from: number, to: number): string => String.fromCharCode(...data.subarray(from, to));
  return data.length >= 12 && ascii(0, 4) === 'RIFF' && ascii(8, 12) === 'WEBP';
}

interface PreviewBody {
  previews: Array<{ id: string; hash: string; kind: PreviewKind; data: string }>;
}

/** The body of `POST /v1/profiles/previews`: at most `maxPreviews`, each base64 of at most `base64Max` characters. */
function previewBodySchema(maxPreviews: number, base64Max: number) {
  return {
    type: 'object',
    properties: {
      previews: {
        type: 'array',
        maxItems: maxPreviews,
        items: {
          type: 'object',
          properties: {
            id: { type: 'string', minLength: 1, maxLength: 1024 },
            hash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            kind: { type: 'string', enum: [...PREVIEW_KINDS] },
            data: { type: 'string', minLength: 1, maxLength: base64Max, pattern: '^[A-Za-z0-9+/]+={0,2}$' },
          },
          required: ['id', 'hash', 'kind', 'data'],
          additionalProperties: false,
        },
      },
    },
    required: ['previews'],
    additionalProperties: false,
  } as const;
}

/** Whether a conditional request's validators (`If-None-Match` first, else `If-Modified-Since`) still match. */
function stillFresh(inm: string | undefined, ims: string | undefined, etag: string, modified: Date): boolean {
  return inm !== undefined
    ? inm.split(',').some((t) => t.trim() === etag || t.trim() === '*')
    : ims !== undefined && Date.parse(ims) >= modified.getTime();
}

/** Registers the preview routes on the REST app. */
export function registerPreviewRoutes(app: FastifyInstance, store: Store, options: PreviewRoutesOptions = {}): void {
  const maxPreviews = options.maxPreviewsPerRequest ?? 64;
  const base64Max = Math.ceil(MAX_PREVIEW_BYTES / 3) * 4;
  const errors = { 400: errorSchema, 404: errorSchema };

  app.post<{ Body: PreviewBody }>('/v1/profiles/previews', {
    // Each preview is at most MAX_PREVIEW_BYTES; a request carries a few clips' worth.
    bodyLimit: Math.min(maxPreviews, 8) * (base64Max + 1024),
    schema: {
      body: previewBodySchema(maxPreviews, base64Max),
      response: { 200: { type: 'object', properties: { stored: { type: 'integer' } }, required: ['stored'] }, ...errors },
    },
    handler: async (req) => {
      const now = Date.now();
      const entries = req.body.previews.map((p, i) => {
        const data = Buffer.from(p.data, 'base64');
        if (!looksLike(p.kind, data)) {
          throw new MotiveError('MOTIVE_API_BAD_REQUEST', `previews[${i}] (${p.id}, ${p.kind}) is not ${PREVIEW_TYPES[p.kind]}`);
        }
        return { clipId: p.id, hash: p.hash, kind: p.kind, record: { type: PREVIEW_TYPES[p.kind], createdAtMs: now, data } };
      });
      await store.putPreviews(entries);
      return { stored: entries.length };
    },
  });

  app.get<{ Params: { run: string; id: string }; Querystring: { kind: PreviewKind } }>('/v1/runs/:run/samples/:id/preview', {
    schema: {
      params: sampleParams,
      querystring: {
        type: 'object',
        properties: { kind: { type: 'string', enum: [...PREVIEW_KINDS], default: 'strip' }, token: tokenParam },
        additionalProperties: false,
      },
      response: errors,
    },
    handler: async (req, reply) => {
      const run = store.run(req.params.run);
      if (run === undefined) throw new MotiveError('MOTIVE_API_RUN_NOT_FOUND', req.params.run);
      if (!run.samples.has(req.params.id)) throw new MotiveError('MOTIVE_API_SAMPLE_NOT_FOUND', req.params.id);
      const kind = req.query.kind;
      const profile = store.profile(req.params.id);
      const preview = store.preview(req.params.id, kind);
      if (profile === undefined || preview === undefined) {
        throw new MotiveError('MOTIVE_API_PREVIEW_NOT_FOUND', `${req.params.id} has no ${kind} preview (motive profile writes them)`);
      }
      // The file hash names the clip's content, the time this encoding of it.
      const etag = `"${profile.hash.slice(0, 16)}-${kind}-${preview.createdAtMs.toString(36)}"`;
      const modified = new Date(Math.floor(preview.createdAtMs / 1000) * 1000);
      reply
        .header('etag', etag)
        .header('last-modified', modified.toUTCString())
        .header('cache-control', `private, max-age=${PREVIEW_MAX_AGE_S}`)
        .header('x-content-type-options', 'nosniff');
      const fresh = stillFresh(req.headers['if-none-match'], req.headers['if-modified-since'], etag, modified);
      if (fresh) return reply.code(304).send();
      return reply.type(preview.type).send(Buffer.from(preview.data.buffer, preview.data.byteOffset, preview.data.byteLength));
    },
  });
}
