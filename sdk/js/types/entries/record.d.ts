// `@assist-relay/sdk/record`: the client core, the recorder and the guidance overlay.
export * from '../core.js';
export * from '../recording.js';
