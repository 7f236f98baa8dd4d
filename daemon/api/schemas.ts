/** JSON Schemas of the REST contract (docs/api.md). Responses are serialised through them. */
import { sampleMotionSchema } from './motion-schemas.js';

export const errorSchema = {
  type: 'object',
  properties: { code: { type: 'string' }, message: { type: 'string' } },
  required: ['code', 'message'],
} as const;

export const sampleSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    score: { type: 'number' },
    seen: { type: 'number' },
    votes: { type: 'integer' },
    weight: { type: 'number' },
    lastStep: { type: 'number' },
    fused: { type: ['number', 'null'] },
    check: { type: ['number', 'null'] },
    motion: sampleMotionSchema,
  },
  required: ['id', 'score', 'seen', 'votes', 'weight', 'lastStep', 'fused', 'check'],
} as const;

export const sampleDetailSchema = {
  type: 'object',
  properties: {
    ...sampleSchema.properties,
    querySums: { type: 'array', items: { type: 'number' } },
    queryIds: { type: 'array', items: { type: 'string' } },
    features: { type: 'object', additionalProperties: { type: 'number' } },
    history: {
      type: 'array',
      items: {
        type: 'object',
        properties: { seen: { type: 'integer' }, step: { type: 'number' }, score: { type: 'number' }, weight: { type: 'number' } },
        required: ['seen', 'step', 'score', 'weight'],
      },
    },
    explain: {
      type: 'object',
      properties: {
        group: { type: ['string', 'null'], enum: ['harmful', 'helpful', 'middle', null] },
        rank: { type: ['integer', 'null'] },
        profiled: { type: 'integer' },
        fraction: { type: 'number' },
        sentence: { type: 'string' },
        summary: { type: 'array', items: { type: 'string' } },
      },
      required: ['group', 'rank', 'profiled', 'fraction', 'sentence', 'summary'],
    },
  },
  required: [...sampleSchema.required, 'querySums', 'queryIds', 'features', 'history', 'explain'],
} as const;

export const runSummarySchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    dim: { type: 'integer' },
    samples: { type: 'integer' },
    batches: { type: 'integer' },
    sketches: { type: 'integer' },
    lastStep: { type: 'number' },
    queries: { type: 'integer' },
    weightsVersion: { type: 'integer' },
    attachedTrainers: { type: 'integer' },
  },
  required: ['id', 'dim', 'samples', 'batches', 'sketches', 'lastStep', 'queries', 'weightsVersion', 'attachedTrainers'],
} as const;

export const runDetailSchema = {
  type: 'object',
  properties: {
    ...runSummarySchema.properties,
    dtype: { type: 'string' },
    scoreMode: { type: 'string' },
    worldSize: { type: 'integer' },
    createdAt: { type: 'string' },
    projection: {
      type: 'object',
      properties: { kind: { type: 'string' }, seed: { type: 'string' }, dim: { type: 'integer' }, fingerprint: { type: 'string' } },
      required: ['kind', 'seed', 'dim', 'fingerprint'],
    },
    queryIds: { type: 'array', items: { type: 'string' } },
    queryVersion: { type: 'integer' },
    querySets: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          version: { type: 'integer' },
          step: { type: 'number' },
          queries: { type: 'integer' },
          receivedAt: { type: 'string' },
        },
        required: ['version', 'step', 'queries', 'receivedAt'],
      },
    },
    voteThresholds: { type: 'array', items: { type: ['number', 'null'] } },
    ranks: {
      type: 'array',
      items: {
        type: 'object',
        properties: { rank: { type: 'integer' }, lastCommittedSeq: { type: 'integer' } },
        required: ['rank', 'lastCommittedSeq'],
      },
    },
    downweighted: { type: 'integer' },
    quarantined: { type: 'integer' },
    sidecar: {
      type: 'object',
      properties: {
        backlog: { type: 'integer' },
        leased: { type: 'integer' },
        created: { type: 'integer' },
        attributed: { type: 'integer' },
        dropped: { type: 'integer' },
        batches: { type: 'integer' },
        stalenessMean: { type: 'number' },
        stalenessMax: { type: 'number' },
      },
      required: ['backlog', 'leased', 'created', 'attributed', 'dropped', 'batches', 'stalenessMean', 'stalenessMax'],
    },
  },
  required: [
    ...runSummarySchema.required,
    'dtype',
    'scoreMode',
    'worldSize',
    'createdAt',
    'projection',
    'queryIds',
    'queryVersion',
    'querySets',
    'voteThresholds',
    'ranks',
    'downweighted',
    'quarantined',
  ],
} as const;

export const runParams = {
  type: 'object',
  properties: { run: { type: 'string', minLength: 1, maxLength: 128 } },
  required: ['run'],
  additionalProperties: false,
} as const;

export const sampleParams = {
  type: 'object',
  properties: { run: { type: 'string', minLength: 1, maxLength: 128 }, id: { type: 'string', minLength: 1, maxLength: 1024 } },
  required: ['run', 'id'],
  additionalProperties: false,
} as const;

/** `?token=`, which every route takes (docs/security.md); listed where a query string is checked. */
export const tokenParam = { type: 'string' } as const;
