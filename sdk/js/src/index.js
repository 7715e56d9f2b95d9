// `@assist-relay/sdk`: everything. Pages that need only part of it import a subpath
// (`/record`, `/replay`, `/chat`: src/entries/) and bundle less.

export * from './core.js';
export { startRecording } from './recording.js';
export { LiveView, snapshotTitle, describeHref } from './live-view.js';
export { ChatPanel } from './chat.js';
export { GuideSender, attachGuide, replayPoint, POINTER_INTERVAL, MAX_ANNOTATION_BYTES } from './guide.js';
export { GuideOverlay } from './guide-overlay.js';
export { CallManager, CallStates } from './call.js';
