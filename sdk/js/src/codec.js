// Frame codecs of the assist-relay v1 protocol (docs/protocol.md §3.3, §4).
//
// Both codecs work on plain frame objects. One extension on the way out: a frame's `event` may be
// a `RawEvent` (the rrweb event's JSON text, serialized once by the caller), which the JSON codec
// embeds as JSON text and the MessagePack codec sends as a `bin` of that text, so the relay gets
// exactly the bytes the SDK hashed and measured. On the way in, both codecs return `event` as a
// parsed object and `chunk` `data` as a string (JSON) or a Uint8Array (MessagePack `bin`).

import { encode as mpEncode, decode as mpDecode } from '@msgpack/msgpack';

export const JSON_SUBPROTOCOL = 'assist-relay.v1.json';
export const MSGPACK_SUBPROTOCOL = 'assist-relay.v1.msgpack';
export const TOKEN_SUBPROTOCOL_PREFIX = 'assist-relay.token.';

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

/** The JSON text of an rrweb event, serialized once. */
export class RawEvent {
  /** @param {string} json */
  constructor(json) {
    /** @type {string} */
    this.json = json;
    /** @type {Uint8Array | undefined} */
    this._bytes = undefined;
  }

  /** UTF-8 bytes of the JSON text (computed once). */
  get bytes() {
    if (!this._bytes) this._bytes = utf8Encoder.encode(this.json);
    return this._bytes;
  }
}

/** @param {Uint8Array} bytes */
export function utf8Decode(bytes) {
  return utf8Decoder.decode(bytes);
}

/** @param {string} text */
export function utf8Encode(text) {
  return utf8Encoder.encode(text);
}

/**
 * @param {unknown} data a WebSocket message payload
 * @returns {Uint8Array | null}
 */
function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  // Node Buffer[] (ws fragments) is not produced with binaryType 'arraybuffer'; Blob is not
  // supported (the client sets binaryType = 'arraybuffer').
  return null;
}

/**
 * @typedef {object} Codec
 * @property {'json' | 'msgpack'} name
 * @property {string} subprotocol
 * @property {(frame: Record<string, unknown>) => string | Uint8Array} encode
 * @property {(data: unknown) => Record<string, any>} decode throws on a frame of the wrong kind
 *   or that does not decode to a map with a string `type`
 */

/** @type {Codec} */
export const jsonCodec = {
  name: 'json',
  subprotocol: JSON_SUBPROTOCOL,
  encode(frame) {
    const { event, ...rest } = frame;
    if (event instanceof RawEvent) {
      const head = JSON.stringify(rest);
      // `rest` always has `type`, so `head` is a non-empty object: splice the event in.
      return `${head.slice(0, -1)},"event":${event.json}}`;
    }
    return JSON.stringify(frame);
  },
  decode(data) {
    if (typeof data !== 'string') throw new Error('binary frame on a JSON connection');
    const frame = JSON.parse(data);
    return checkFrame(frame);
  },
};

/** @type {Codec} */
export const msgpackCodec = {
  name: 'msgpack',
  subprotocol: MSGPACK_SUBPROTOCOL,
  encode(frame) {
    /** @type {Record<string, unknown>} */
    const out = {};
    for (const [k, v] of Object.entries(frame)) {
      if (v === undefined) continue;
      if (k === 'event') {
        // The event travels as JSON text inside a `bin` (§4.3).
        out[k] = v instanceof RawEvent ? v.bytes : utf8Encoder.encode(JSON.stringify(v));
      } else {
        out[k] = v;
      }
    }
    return mpEncode(out);
  },
  decode(data) {
    if (typeof data === 'string') throw new Error('text frame on a MessagePack connection');
    const bytes = toBytes(data);
    if (!bytes) throw new Error('unsupported binary message type');
    const frame = checkFrame(mpDecode(bytes));
    if (frame.event instanceof Uint8Array) frame.event = JSON.parse(utf8Decoder.decode(frame.event));
    else if (typeof frame.event === 'string') frame.event = JSON.parse(frame.event);
    return frame;
  },
};

/**
 * @param {unknown} frame
 * @returns {Record<string, any>}
 */
function checkFrame(frame) {
  if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) {
    throw new Error('frame is not a map');
  }
  if (typeof /** @type {any} */ (frame).type !== 'string') throw new Error('frame has no string type');
  // `null` is absent (§4.4).
  for (const [k, v] of Object.entries(frame)) if (v === null) delete /** @type {any} */ (frame)[k];
  return /** @type {Record<string, any>} */ (frame);
}

/**
 * @param {'json' | 'msgpack' | Codec} codec
 * @returns {Codec}
 */
export function getCodec(codec) {
  if (codec === undefined || codec === 'json') return jsonCodec;
  if (codec === 'msgpack') return msgpackCodec;
  if (codec && typeof codec === 'object' && typeof codec.encode === 'function') return codec;
  throw new TypeError(`unknown codec ${String(codec)}`);
}

/**
 * Cuts UTF-8 bytes into slices of at most `maxBytes` bytes, never inside a multi-byte character,
 * so each slice is valid UTF-8 (and so a valid JSON string once decoded). A character is at most
 * 4 bytes, so `maxBytes` must be at least 4.
 *
 * @param {Uint8Array} bytes
 * @param {number} maxBytes
 * @returns {Uint8Array[]}
 */
export function sliceUtf8(bytes, maxBytes) {
  if (!(maxBytes >= 4)) throw new RangeError('slice size must be at least 4 bytes');
  const slices = [];
  for (let start = 0; start < bytes.length; ) {
    let end = Math.min(start + maxBytes, bytes.length);
    // Back off while `end` points at a continuation byte (10xxxxxx): not inside a character.
    while (end < bytes.length && (bytes[end] & 0xc0) === 0x80) end--;
    slices.push(bytes.subarray(start, end));
    start = end;
  }
  return slices;
}

/**
 * `sha256:` and the lowercase hex SHA-256 of `bytes`, via WebCrypto.
 *
 * @param {Uint8Array} bytes
 * @returns {Promise<string>}
 */
export async function sha256Digest(bytes) {
  const subtle = globalThis.crypto?.subtle;
  if (!subtle) throw new Error('WebCrypto (crypto.subtle) is not available: uploads need SHA-256');
  const hash = new Uint8Array(await subtle.digest('SHA-256', /** @type {Uint8Array<ArrayBuffer>} */ (bytes)));
  let hex = 'sha256:';
  for (const b of hash) hex += b.toString(16).padStart(2, '0');
  return hex;
}
