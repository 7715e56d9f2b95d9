// The outbound queue of RelayClient: events and native pages in publish order until acked, chat
// and events resent with the same id after a retryable error or a reconnect, `ack` and `error`
// frames of our own sends, the overflow bound. Large events go out as chunked uploads
// (upload.js). It does not open or close sockets (connection.js).

import { MAX_UPLOAD_RESTARTS, RETRYABLE_ERRORS, RelayError } from './protocol.js';

/** @typedef {import('./client.js').ClientInternals} ClientInternals */
/**
 * RelayClient's fields (declared in its constructor). tsc takes a mixin method's first write of a
 * field for a declaration on the mixin class, so such writes name the field's type from here.
 * @typedef {import('./client.js').RelayClient} RelayClientFields
 */
/** @typedef {import('./codec.js').RawEvent} RawEvent */

/**
 * Methods installed on RelayClient.prototype by client.js (`this` is the RelayClient; its
 * fields are declared in its constructor).
 */
export class OutboxMethods {
  /**
   * @param {Record<string, any>} f
   * @this {ClientInternals}
   */
  _onAck(f) {
    const ack = { id: f.id, offset: f.offset, duplicate: f.duplicate === true };
    const chat = this._chats.get(f.id);
    if (chat) {
      this._chats.delete(f.id);
      chat.resolve(ack);
    }
    const entry = this._outbox.get(f.id);
    if (entry) {
      this._outbox.delete(f.id);
      entry.resolve(ack);
    }
    this.emit('ack', ack);
  }

  /**
   * @param {Record<string, any>} f
   * @this {ClientInternals}
   */
  _onError(f) {
    const retryable = RETRYABLE_ERRORS.has(f.code);
    this.emit('error', { code: f.code, message: f.message, id: f.id, retryable });
    if (f.id === undefined) return;
    const chat = this._chats.get(f.id);
    if (chat) {
      if (retryable) {
        chat.notBefore = Date.now() + this._retryDelay;
        this._scheduleRetry();
      } else {
        this._chats.delete(f.id);
        chat.reject(new RelayError(f.code, f.message ?? '', { id: f.id }));
      }
    }
    const entry = this._outbox.get(f.id);
    if (!entry) return;
    if (retryable || (f.code === 'upload_invalid' && entry.upload)) {
      if (entry.upload && f.code !== 'upload_limit' && f.code !== 'rate_limited') {
        // storing the stitched event failed, or the staged upload was discarded: whole upload again
        entry.upload.acked.clear();
        if (f.code === 'upload_invalid' && ++entry.restarts > MAX_UPLOAD_RESTARTS) {
          this._outbox.delete(f.id);
          entry.reject(new RelayError(f.code, f.message ?? '', { id: f.id }));
          return;
        }
      }
      entry.sentGen = -1;
      entry.notBefore = Date.now() + (retryable ? this._retryDelay : 0);
      this._scheduleRetry();
    } else {
      this._outbox.delete(f.id);
      entry.reject(new RelayError(f.code, f.message ?? '', { id: f.id }));
    }
  }

  /** @this {ClientInternals} */
  _scheduleRetry() {
    if (this._retryTimer) return;
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      if (this.state !== 'joined') return;
      const now = Date.now();
      let later = false;
      for (const c of this._chats.values()) {
        if (c.notBefore === 0) continue;
        if (c.notBefore <= now) {
          c.notBefore = 0;
          this._send({ type: 'chat', id: c.id, text: c.text });
        } else later = true;
      }
      for (const e of this._outbox.values()) if (e.notBefore > now) later = true;
      this._flush();
      if (later) this._scheduleRetry();
    }, this._retryDelay);
  }

  // ---------------------------------------------------------------------------------------------
  // Outbox: events and native pages, in order, until acked

  /**
   * @param {{ kind: 'event' | 'native_page', id: string, raw?: RawEvent, page?: object }} item
   * @this {ClientInternals}
   */
  _enqueue(item) {
    if (this.state === 'closed') return Promise.reject(new RelayError('closed', 'client is closed'));
    const existing = this._outbox.get(item.id);
    if (existing) return existing.promise;
    let resolve, reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {});
    while (this._outbox.size >= this._maxQueued) {
      const [oldId, old] = /** @type {[string, any]} */ (this._outbox.entries().next().value);
      this._outbox.delete(oldId);
      old.reject(new RelayError('queue_overflow', 'dropped: too many unacked events', { id: oldId }));
      this.emit('overflow', { id: oldId });
    }
    this._outbox.set(item.id, {
      ...item,
      resolve,
      reject,
      promise,
      sentGen: -1,
      notBefore: 0,
      upload: null,
      restarts: 0,
    });
    if (this.state === 'joined') this._flush();
    return promise;
  }

  /**
   * Sends every outbox entry not sent on the current connection, in order.
   * @this {ClientInternals}
   */
  async _flush() {
    if (this._flushing) {
      /** @type {RelayClientFields['_flushAgain']} */
      this._flushAgain = true;
      return;
    }
    this._flushing = true;
    try {
      do {
        this._flushAgain = false;
        for (const entry of [...this._outbox.values()]) {
          if (this.state !== 'joined') break;
          const gen = this._gen;
          if (entry.sentGen === gen || this._outbox.get(entry.id) !== entry) continue;
          if (entry.notBefore > Date.now()) continue;
          if (entry.kind === 'native_page') {
            if (this._send({ type: 'native_page', id: entry.id, page: entry.page })) entry.sentGen = gen;
            continue;
          }
          const size = entry.raw.bytes.length;
          if (size <= this.limits.chunkBytes) {
            if (this._send({ type: 'event', id: entry.id, event: entry.raw })) entry.sentGen = gen;
            continue;
          }
          if (size > this.limits.maxUploadBytes) {
            this._outbox.delete(entry.id);
            entry.reject(
              new RelayError('too_large', `event of ${size} bytes exceeds max_upload_bytes`, {
                id: entry.id,
              }),
            );
            continue;
          }
          if (!entry.upload) {
            try {
              entry.upload = await this._prepareUpload(entry.raw);
            } catch (e) {
              this._outbox.delete(entry.id);
              entry.reject(e);
              continue;
            }
            if (gen !== this._gen || this.state !== 'joined') {
              this._flushAgain = this.state === 'joined';
              break;
            }
          }
          if (this._sendUpload(entry)) entry.sentGen = gen;
        }
      } while (this._flushAgain && this.state === 'joined');
    } finally {
      this._flushing = false;
    }
  }
}
