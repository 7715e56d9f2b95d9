// `@assist-relay/sdk/chat`: the client core, chat and voice calls.
export * from '../core.js';
export * from '../chat.js';
