/** JSON Schemas of the REST contract (docs/api.md). Responses are serialised through them. */

export const errorSchema = {
  type: 'object',
  properties: { code: { type: 'string' }, message: { type: 'string' } },
  required: ['code', 'message'],
} as const;

/** The error answers every route may give. */
export const errorResponses = { 400: errorSchema, 401: errorSchema, 403: errorSchema, 404: errorSchema } as const;

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
