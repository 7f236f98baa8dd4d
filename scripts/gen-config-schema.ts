// Writes schemas/config.schema.json from the TypeBox source of the daemon configuration.
import { writeFileSync } from 'node:fs';
import { configSchemaJson } from './config-schema-json.js';

const target = new URL('../schemas/config.schema.json', import.meta.url);
writeFileSync(target, configSchemaJson());
console.log(`wrote ${target.pathname}`);
