export { buildApi, type ApiDeps, type ApiOptions } from './server.js';
