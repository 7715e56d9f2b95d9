// The connection state machine of RelayClient: open a socket (token provider, subprotocols),
// send `join` (with `resume` when an epoch and offset are known), keep-alive pings, close and
// reconnect with backoff, stop for good. It does not interpret incoming frames (inbound.js) nor
// own the queue of unacked sends (outbox.js); it only hands them the socket's data and rejects
// what is pending when the client stops.

import { TOKEN_SUBPROTOCOL_PREFIX } from './codec.js';
import { CloseCodes, OPEN, RelayError, shouldReconnect } from './protocol.js';

/** @typedef {import('./client.js').ClientInternals} ClientInternals */
/**
 * RelayClient's fields (declared in its constructor). tsc takes a mixin method's first write of a
 * field for a declaration on the mixin class, so such writes name the field's type from here.
 * @typedef {import('./client.js').RelayClient} RelayClientFields
 */

/**
 * @param {string} url
 * @param {string} key
 * @param {string} value
 */
export function withQuery(url, key, value) {
  const u = new URL(url);
  u.searchParams.set(key, value);
  return u.toString();
}

/**
 * Methods installed on RelayClient.prototype by client.js (`this` is the RelayClient; its
 * fields are declared in its constructor).
 */
export class ConnectionMethods {
  // ---------------------------------------------------------------------------------------------
  // Connection lifecycle

  /**
   * Whether the client stopped for good; read after an `await` (the state may have changed
   * meanwhile, which tsc's narrowing of `this.state` does not know).
   * @this {ClientInternals}
   * @returns {boolean}
   */
  _stopped() {
    return this.state === 'closed';
  }

  /** @this {ClientInternals} */
  async _open() {
    const gen = ++this._gen;
    this.state = 'connecting';
    let token;
    try {
      token = typeof this._token === 'function' ? await this._token() : this._token;
    } catch (e) {
      if (gen !== this._gen || this._stopped()) return;
      this.emit('error', { code: 'token_unavailable', message: String(e?.message ?? e), error: e });
      this._onClose(1006, 'token provider failed');
      return;
    }
    if (gen !== this._gen || this._stopped()) return;

    const protocols = [this._codec.subprotocol];
    let url = this._url;
    if (this._tokenTransport === 'query') url = withQuery(url, 'token', token);
    else protocols.push(TOKEN_SUBPROTOCOL_PREFIX + token);

    /** @type {any} */
    let ws;
    try {
      ws = new this._WebSocket(url, protocols);
    } catch (e) {
      this.emit('error', { code: 'connect_failed', message: String(e?.message ?? e), error: e });
      this._onClose(1006, 'WebSocket constructor failed');
      return;
    }
    this._ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => {
      if (gen !== this._gen) return;
      this.state = 'joining';
      this._send(
        this.epoch !== null && this.offset !== null
          ? { type: 'join', resume: { epoch: this.epoch, offset: this.offset } }
          : { type: 'join' },
      );
      this._startPing();
    };
    ws.onmessage = (/** @type {{ data: unknown }} */ msg) => {
      if (gen !== this._gen) return;
      this._onData(msg.data);
    };
    ws.onerror = () => {
      // A close event follows; nothing to do here.
    };
    ws.onclose = (/** @type {{ code?: number, reason?: string } | undefined} */ e) => {
      if (gen !== this._gen) return;
      this._onClose(e?.code ?? 1006, e?.reason ?? '');
    };
  }

  /**
   * Drops the current socket as if the network failed (used by the keep-alive).
   * @param {number} code
   * @param {string} reason
   * @this {ClientInternals}
   */
  _dropSocket(code, reason) {
    const ws = this._ws;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch {
        // ignore
      }
    }
    this._onClose(code, reason);
  }

  /**
   * @param {number} code
   * @param {string} reason
   * @this {ClientInternals}
   */
  _onClose(code, reason) {
    if (this.state === 'closed') return;
    this._ws = null;
    this._gen++; // anything still in flight belongs to the old connection
    this._stopPing();
    /** @type {RelayClientFields['_assembly']} */
    this._assembly = null; // a partial large event is delivered again after resume (§9.4)
    if (code === CloseCodes.ROOM_CLOSED && this._end) this._end.resolve();
    const willReconnect =
      this._reconnect !== null && shouldReconnect(code, typeof this._token === 'function');
    this.emit('disconnected', { code, reason, willReconnect });
    if (!willReconnect) {
      this._stop({ code, reason, byClient: false });
      return;
    }
    const { initialDelay, maxDelay, jitter } = /** @type {NonNullable<RelayClientFields['_reconnect']>} */ (this._reconnect);
    const base = Math.min(maxDelay, initialDelay * 2 ** this._attempt);
    const delay = base * (1 - jitter + 2 * jitter * this._random());
    this._attempt++;
    this.state = 'connecting';
    this.emit('reconnecting', { attempt: this._attempt, delay, code, reason });
    this._reconnectTimer = setTimeout(() => {
      this._reconnectTimer = null;
      if (this.state !== 'closed') this._open();
    }, delay);
  }

  /**
   * @param {{ code: number, reason: string, byClient: boolean }} info
   * @this {ClientInternals}
   */
  _stop(info) {
    this.state = 'closed';
    this._gen++;
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._retryTimer);
    this._stopPing();
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000);
      } catch {
        // ignore
      }
    }
    const err = new RelayError('closed', `connection closed (${info.code} ${info.reason})`, {
      closeCode: info.code,
    });
    for (const c of this._chats.values()) c.reject(err);
    this._chats.clear();
    for (const e of this._outbox.values()) e.reject(err);
    this._outbox.clear();
    if (this._end && info.code !== CloseCodes.ROOM_CLOSED) this._end.reject(err);
    this._firstJoin?.reject(err);
    this.emit('closed', info);
  }

  /** @this {ClientInternals} */
  _startPing() {
    this._stopPing();
    if (!this._ping) return;
    const { interval, timeout } = /** @type {NonNullable<RelayClientFields['_ping']>} */ (this._ping);
    /** @type {RelayClientFields['_pingTimer']} */
    this._pingTimer = setInterval(() => {
      if (this._pongTimer) return; // still waiting for the previous answer
      this._send({ type: 'ping', id: `p-${++this._pingCounter}` });
      this._pongTimer = setTimeout(() => {
        this._pongTimer = null;
        this._dropSocket(1006, 'keep-alive timeout');
      }, timeout);
    }, interval);
  }

  /** @this {ClientInternals} */
  _stopPing() {
    clearInterval(this._pingTimer ?? undefined);
    clearTimeout(this._pongTimer);
    this._pingTimer = null;
    this._pongTimer = null;
  }

  /**
   * @param {Record<string, unknown>} frame
   * @returns {boolean} whether it was handed to the socket
   * @this {ClientInternals}
   */
  _send(frame) {
    const ws = this._ws;
    if (!ws || ws.readyState !== OPEN) return false;
    try {
      ws.send(this._codec.encode(frame));
      return true;
    } catch (e) {
      this.emit('error', { code: 'send_failed', message: String(e?.message ?? e), error: e });
      return false;
    }
  }
}
