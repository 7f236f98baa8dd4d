/**
 * Loads `schemas/motive.proto` for grpc-js. The message types are generated from the same schema
 * (`shared/wire.ts`, `npm run gen:wire`) and describe what grpc-js decodes with these options.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { WIRE_DECODE_OPTIONS } from '../shared/wire.js';

export type {
  DaemonMessageInit,
  HelloMsg,
  LeaseReplyInit,
  LeaseRequestMsg,
  QuerySetMsg,
  SketchBatchMsg,
  TrainerMessageMsg,
} from '../shared/wire.js';

export const PROTO_PATH = fileURLToPath(new URL('../../schemas/motive.proto', import.meta.url));

/** Decoding options shared by the server and the TypeScript client: the ones the wire types describe. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = WIRE_DECODE_OPTIONS;

/** The `motive.v1.Attribution` service definition and client constructor. */
export function loadAttributionService(): { service: grpc.ServiceDefinition; Client: grpc.ServiceClientConstructor } {
  const definition = protoLoader.loadSync(PROTO_PATH, PROTO_LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    motive: { v1: { Attribution: grpc.ServiceClientConstructor } };
  };
  const Client = pkg.motive.v1.Attribution;
  return { service: Client.service, Client };
}
