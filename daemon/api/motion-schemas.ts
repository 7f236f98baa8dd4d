/** JSON Schemas of the motion-profile REST routes and of the `motion` field of sample views. */

const descriptorProperties = {
  dynamic: { type: 'boolean' },
  dynamicDegree: { type: 'number' },
  flowMean: { type: 'number' },
  flowTop5: { type: 'number' },
  jitter: { type: 'number' },
  reversals: { type: 'number' },
  staticFraction: { type: 'number' },
  sceneCuts: { type: 'integer' },
  frames: { type: 'integer' },
} as const;

/** A clip's motion descriptors as sample views show them; null when the clip has no profile. */
export const sampleMotionSchema = {
  type: ['object', 'null'],
  properties: { ...descriptorProperties, hash: { type: 'string' }, profiledAt: { type: 'string' } },
} as const;

/** A full profile as `motive profile` posts it and `GET /v1/profiles/:id` returns it. */
export const profileSchema = {
  type: 'object',
  properties: {
    id: { type: 'string', minLength: 1, maxLength: 1024 },
    hash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    path: { type: 'string' },
    width: { type: 'integer', minimum: 1 },
    height: { type: 'integer', minimum: 1 },
    fps: { type: 'number', minimum: 0 },
    analysisWidth: { type: 'integer', minimum: 1 },
    analysisHeight: { type: 'integer', minimum: 1 },
    stride: { type: 'integer', minimum: 1 },
    flowModel: { type: 'string' },
    profiledAtMs: { type: 'number' },
    ...descriptorProperties,
  },
  required: ['id', 'hash', 'path', 'profiledAtMs', ...Object.keys(descriptorProperties)],
  additionalProperties: false,
} as const;

/** One descriptor's separation of harmful from helpful clips in `GET /v1/runs/:run/explain`. */
export const explainSchema = {
  type: 'object',
  properties: {
    run: { type: 'string' },
    samples: { type: 'integer' },
    profiled: { type: 'integer' },
    fraction: { type: 'number' },
    harmful: { type: 'integer' },
    helpful: { type: 'integer' },
    descriptors: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          spearman: { type: ['number', 'null'] },
          auc: { type: ['number', 'null'] },
          harmfulMean: { type: ['number', 'null'] },
          helpfulMean: { type: ['number', 'null'] },
          separation: { type: 'number' },
        },
        required: ['name', 'spearman', 'auc', 'harmfulMean', 'helpfulMean', 'separation'],
      },
    },
    summary: { type: 'array', items: { type: 'string' } },
  },
  required: ['run', 'samples', 'profiled', 'fraction', 'harmful', 'helpful', 'descriptors', 'summary'],
} as const;
