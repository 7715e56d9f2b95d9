// `@assist-relay/sdk/replay`: the agent's console. The client core, the live rrweb replay
// (`LiveView`) and guidance sending; no recorder.

export * from '../core.js';
export { LiveView, snapshotTitle, describeHref } from '../live-view.js';
export { GuideSender, attachGuide, replayPoint, POINTER_INTERVAL, MAX_ANNOTATION_BYTES } from '../guide.js';
