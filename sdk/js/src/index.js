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
export { startRecording, LiveView, snapshotTitle, describeHref } from './rrweb.js';
export { ChatPanel } from './chat.js';
export { Emitter } from './emitter.js';
export { GuideSender, GuideOverlay, attachGuide, replayPoint, POINTER_INTERVAL, MAX_ANNOTATION_BYTES } from './guide.js';
export { CallManager, CallStates } from './call.js';
