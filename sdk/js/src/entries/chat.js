// `@assist-relay/sdk/chat`: chat and voice calls without rrweb. The client core, `ChatPanel` and
// `CallManager`.

export * from '../core.js';
export { ChatPanel } from '../chat.js';
export { CallManager, CallStates } from '../call.js';
