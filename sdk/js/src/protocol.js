// Protocol constants the client acts on (docs/protocol.md v1) and the client's error type:
// retryable error codes (§14), close codes and when to reconnect (§15), the default limits used
// until `joined` brings the relay's own. Owns no state and sends nothing; client.js re-exports
// the public names (index.js imports them from there).

/** Error codes after which resending the same frame (same id) is safe and useful (§14). */
export const RETRYABLE_ERRORS = new Set(['rate_limited', 'unavailable', 'internal', 'upload_limit']);

/** Close codes (§15). */
export const CloseCodes = Object.freeze({
  SHUTDOWN: 4000,
  SLOW: 4001,
  JOIN_TIMEOUT: 4002,
  IDLE_TIMEOUT: 4003,
  UNAVAILABLE: 4004,
  TOKEN_EXPIRED: 4500,
  POLICY_VIOLATION: 4501,
  ROOM_CLOSED: 4502,
  ROOM_FULL: 4503,
  TOO_MANY_CONNECTIONS_FOR_PARTICIPANT: 4504,
});

/** Wire defaults used until `joined.limits` arrives (wire names: wire.js maps them). */
export const DEFAULT_LIMITS = Object.freeze({
  max_frame_bytes: 1048576,
  max_upload_bytes: 67108864,
  chunk_bytes: 524032,
});

/** WebSocket readyState OPEN. */
export const OPEN = 1;
/** Times an upload is restarted after `upload_invalid` before its promise is rejected. */
export const MAX_UPLOAD_RESTARTS = 3;

/** An error that settles a pending promise of the client. */
export class RelayError extends Error {
  /**
   * @param {string} code an error code of §14, or `closed` / `queue_overflow` / `too_large`
   * @param {string} message
   * @param {{ id?: string, closeCode?: number }} [extra]
   */
  constructor(code, message, extra = {}) {
    super(`${code}: ${message}`);
    this.name = 'RelayError';
    this.code = code;
    this.id = extra.id;
    this.closeCode = extra.closeCode;
  }
}

/**
 * Whether a close code means "reconnect and resume" (§15): 4000-4499, the standard codes and
 * network failures; 4500-4999 mean "do not reconnect" (4500 only with a token provider, which
 * fetches a fresh token).
 * @param {number} code
 * @param {boolean} [canRefreshToken]
 */
export function shouldReconnect(code, canRefreshToken = false) {
  if (code === CloseCodes.TOKEN_EXPIRED) return canRefreshToken;
  return !(code >= 4500 && code <= 4999);
}
