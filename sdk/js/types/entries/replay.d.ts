// `@assist-relay/sdk/replay`: the client core, the live replay and guidance sending.
export * from '../core.js';
export * from '../live-view.js';
