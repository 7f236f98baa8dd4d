export {
  CLIENT_DEFAULTS,
  MotiveClient,
  MotiveClientError,
  encodeFloat16Array,
  type MotiveClientOptions,
  type WelcomeInfo,
  type WeightUpdateInfo,
  type DaemonErrorInfo,
  type ClientDType,
} from './client.js';
