export { IngestServer, DAEMON_NAME, type IngestOptions, type IngestDeps, type IngestObserver } from './server.js';
export { loadAttributionService, PROTO_PATH, PROTO_LOADER_OPTIONS, type DaemonMessageInit, type TrainerMessageMsg } from './proto.js';
