// The one place where wire names meet the JS API. The wire protocol (docs/protocol.md) names
// frame types and fields in snake_case; the SDK's events and objects use camelCase, as
// centrifuge-js and socket.io-client do. Every frame field the SDK hands to its users, and every
// object it takes from them to send, goes through a function of this module. The old snake_case
// names (SDK 0.1) stay readable as deprecated aliases: non-enumerable getters on the objects the
// SDK returns, accepted on the objects it takes, and event names mapped by `Emitter`.

import { DEFAULT_LIMITS } from './protocol.js';

/** Deprecated event names (0.1) and the names that replace them. */
export const CLIENT_EVENT_ALIASES = Object.freeze({
  caught_up: 'caughtUp',
  member_joined: 'memberJoined',
  member_left: 'memberLeft',
  snapshot_request: 'snapshotRequest',
  chunk_ack: 'chunkAck',
});

/** Deprecated CallManager event names (0.1). */
export const CALL_EVENT_ALIASES = Object.freeze({
  'remote-stream': 'remoteStream',
  'connection-state': 'connectionState',
});

/**
 * Wire field names whose camelCase form is not the plain conversion.
 * @type {Readonly<Record<string, string>>}
 */
const FIELD_NAMES = Object.freeze({ sdp_mline_index: 'sdpMLineIndex' });

/** @param {string} name a snake_case wire name */
export function camelName(name) {
  return (Object.hasOwn(FIELD_NAMES, name) && FIELD_NAMES[name]) || name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
}

/**
 * Adds `oldName` as a deprecated, non-enumerable alias of `newName` (reads and writes go through),
 * so spreading or serializing the object shows the camelCase names only.
 * @template {object} T
 * @param {T} obj
 * @param {string} oldName
 * @param {string} newName
 * @returns {T}
 */
export function alias(obj, oldName, newName) {
  Object.defineProperty(obj, oldName, {
    get() {
      return this[newName];
    },
    set(v) {
      this[newName] = v;
    },
    enumerable: false,
    configurable: true,
  });
  return obj;
}

/**
 * A flat wire object with camelCase keys; every renamed key keeps its wire name as an alias.
 * @param {Record<string, any>} wire
 * @returns {Record<string, any>}
 */
function camelize(wire) {
  /** @type {Record<string, any>} */
  const out = {};
  for (const [k, v] of Object.entries(wire)) out[camelName(k)] = v;
  for (const k of Object.keys(wire)) {
    const c = camelName(k);
    if (c !== k) alias(out, k, c);
  }
  return out;
}

/**
 * Adds the deprecated `page_id` alias to a page object built by the SDK.
 * @template {{ pageId?: string }} T
 * @param {T} page
 * @returns {T}
 */
export function withPageAlias(page) {
  return alias(page, 'page_id', 'pageId');
}

/**
 * A page timeline entry (`joined.pages`, §5.2): `{kind, url, pageId?, title?, offset, ts}`.
 * @param {Record<string, any>} p
 * @returns {import('../types/core.js').PageRecord}
 */
export function pageFromWire(p) {
  return /** @type {any} */ (camelize(p ?? {}));
}

/**
 * `joined.limits`: `{maxFrameBytes, maxUploadBytes, chunkBytes}`.
 * @param {Record<string, any>} l
 * @returns {import('../types/core.js').Limits}
 */
export function limitsFromWire(l) {
  return /** @type {any} */ (camelize(l ?? {}));
}

/**
 * The `joined` frame as the SDK emits it: camelCase fields (`iceServers`), pages and limits
 * mapped. Unknown fields are kept (camelCased) so that a newer relay's additions show through.
 * @param {Record<string, any>} f
 * @returns {import('../types/core.js').JoinedFrame}
 */
export function joinedFromWire(f) {
  const out = camelize(f);
  out.pages = Array.isArray(f.pages) ? f.pages.map(pageFromWire) : [];
  out.limits = limitsFromWire({ ...DEFAULT_LIMITS, ...(f.limits ?? {}) });
  out.iceServers = Array.isArray(f.ice_servers) ? f.ice_servers : [];
  out.members = Array.isArray(f.members) ? f.members : [];
  return /** @type {any} */ (out);
}

/** The limits used until `joined.limits` arrives (this relay always sends them). */
export function defaultLimits() {
  return limitsFromWire(DEFAULT_LIMITS);
}

/**
 * A call signaling message received (§19): `sdpMid` and `sdpMLineIndex` as in WebRTC's
 * RTCIceCandidateInit.
 * @param {Record<string, any>} s
 * @returns {import('../types/core.js').Signal}
 */
export function signalFromWire(s) {
  return /** @type {any} */ (camelize(s ?? {}));
}

/**
 * A call signaling message to send: camelCase fields (or the 0.1 snake_case ones) to wire names.
 * @param {Record<string, any>} s
 * @returns {Record<string, any>}
 */
export function signalToWire(s) {
  const { sdpMid, sdpMLineIndex, ...rest } = s;
  const out = { ...rest };
  if (sdpMid !== undefined) out.sdp_mid = sdpMid;
  if (sdpMLineIndex !== undefined) out.sdp_mline_index = sdpMLineIndex;
  return out;
}

/**
 * A native page report to send (§11.1): `pageId` (or the 0.1 `page_id`) to `page_id`.
 * @param {Record<string, any>} page
 * @returns {Record<string, any>}
 */
export function nativePageToWire(page) {
  const { pageId, ...rest } = page ?? {};
  const out = { ...rest };
  if (pageId !== undefined) out.page_id = pageId;
  return out;
}
