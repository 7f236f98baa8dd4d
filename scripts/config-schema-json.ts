import { ConfigSchema } from '../daemon/config/index.js';

/** The JSON text of `schemas/config.schema.json`, as generated from the TypeBox schema. */
export function configSchemaJson(): string {
  return `${JSON.stringify({ $schema: 'http://json-schema.org/draft-07/schema#', ...ConfigSchema }, null, 2)}\n`;
}
