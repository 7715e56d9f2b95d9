// Types of @assist-relay/sdk (everything; the subpaths /record, /replay and /chat export parts).
// Hand-written in types/; checked against the code by `npm test` (test/types/, test/package.test.js).
export * from './types/core.js';
export * from './types/recording.js';
export * from './types/live-view.js';
export * from './types/chat.js';
