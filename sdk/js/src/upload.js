// Chunked uploads of large events (§9): serialize once, hash, slice on character boundaries,
// send the slices not yet acked by `chunk_ack`. When an upload is sent and how it is retried is
// the outbox's (outbox.js).

import { sha256Digest, sliceUtf8, utf8Decode } from './codec.js';

/** @typedef {import('./client.js').ClientInternals} ClientInternals */
/** @typedef {import('./codec.js').RawEvent} RawEvent */

/**
 * Methods installed on RelayClient.prototype by client.js (`this` is the RelayClient; its
 * fields are declared in its constructor).
 */
export class UploadMethods {
  /**
   * Serialized once, hashed and sliced on character boundaries (§9.1). JSON slices are strings;
   * MessagePack slices are sent as `bin` (cut on character boundaries too, which is allowed).
   * @param {RawEvent} raw
   * @this {ClientInternals}
   */
  async _prepareUpload(raw) {
    const bytes = raw.bytes;
    const digest = await sha256Digest(bytes);
    const parts = sliceUtf8(bytes, this.limits.chunkBytes);
    const slices = this._codec.name === 'json' ? parts.map((p) => utf8Decode(p)) : parts;
    return { size: bytes.length, digest, count: slices.length, slices, acked: new Set() };
  }

  /**
   * Sends the slices without a `chunk_ack`; if every slice is acked but no `ack` came, the whole
   * upload again (§9.2).
   * @param {any} entry an outbox entry with its `upload`
   * @this {ClientInternals}
   */
  _sendUpload(entry) {
    const u = entry.upload;
    const all = u.acked.size >= u.count;
    for (let index = 0; index < u.count; index++) {
      if (!all && u.acked.has(index)) continue;
      const ok = this._send({
        type: 'chunk',
        id: entry.id,
        index,
        count: u.count,
        size: u.size,
        digest: u.digest,
        data: u.slices[index],
      });
      if (!ok) return false;
    }
    return true;
  }
}
