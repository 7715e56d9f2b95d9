// The client core, exported by every entry point: RelayClient and its error type, close codes,
// codecs and the event emitter. No rrweb, no DOM.

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
export { Emitter } from './emitter.js';
