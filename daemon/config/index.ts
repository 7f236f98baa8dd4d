export { ConfigSchema, type MotiveConfig } from './schema.js';
export { loadConfig } from './load.js';
