// `@assist-relay/sdk/record`: the customer's page. The client core, the rrweb recorder
// (`startRecording`) and the guidance overlay; no replayer.

export * from '../core.js';
export { startRecording } from '../recording.js';
export { GuideOverlay } from '../guide-overlay.js';
