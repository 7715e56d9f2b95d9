export { RelayClient, RelayError, CloseCodes, RETRYABLE_ERRORS, shouldReconnect } from './client.js';
export {
  RawEvent,
  jsonCodec,
  msgpackCodec,
  getCodec,
  sliceUtf8,
  sha256Digest,
  JSON_SUBPROTOCOL,
  MSGPACK_SUBPROTOCOL,
  TOKEN_SUBPROTOCOL_PREFIX,
} from './codec.js';
export { startRecording, LiveView } from './rrweb.js';
export { Emitter } from './emitter.js';
