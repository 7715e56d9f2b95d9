// RelayClient: one participant's connection to an assist-relay room, with join/resume,
// reconnect, chat, event publishing (chunked uploads for large events), chunked delivery and
// keep-alive. Protocol: docs/protocol.md (v1).

import { Emitter } from './emitter.js';
import {
  RawEvent,
  TOKEN_SUBPROTOCOL_PREFIX,
  getCodec,
  sha256Digest,
  sliceUtf8,
  utf8Decode,
  utf8Encode,
} from './codec.js';

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

/** Used until `joined.limits` arrives (this relay always sends them). */
const DEFAULT_LIMITS = Object.freeze({
  max_frame_bytes: 1048576,
  max_upload_bytes: 67108864,
  chunk_bytes: 524032,
});

const OPEN = 1;
const MAX_UPLOAD_RESTARTS = 3;
const SEEN_CHAT_LIMIT = 2000;

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

function randomId() {
  const bytes = new Uint8Array(6);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * @param {string} url
 * @param {string} key
 * @param {string} value
 */
function withQuery(url, key, value) {
  const u = new URL(url);
  u.searchParams.set(key, value);
  return u.toString();
}

/**
 * @typedef {object} RelayClientOptions
 * @property {'json' | 'msgpack'} [codec] default `json`
 * @property {any} [WebSocket] WebSocket constructor; default `globalThis.WebSocket`
 * @property {'subprotocol' | 'query'} [tokenTransport] default `subprotocol`
 * @property {string} [room] adds `?room=` (a safety check, §3.1)
 * @property {false | { initialDelay?: number, maxDelay?: number, jitter?: number }} [reconnect]
 * @property {false | { interval?: number, timeout?: number }} [ping]
 * @property {number} [retryDelay] ms before resending a frame refused with a retryable error
 * @property {string} [idPrefix] prefix of generated chat/event ids; default random
 * @property {number} [maxQueuedEvents] outbox bound; the oldest entries are dropped past it
 * @property {() => number} [random] for tests; default Math.random
 */

export class RelayClient extends Emitter {
  /** @param {RelayClientOptions} [options] */
  constructor(options = {}) {
    super();
    this._codec = getCodec(options.codec ?? 'json');
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this._tokenTransport = options.tokenTransport ?? 'subprotocol';
    this._room = options.room;
    this._reconnect =
      options.reconnect === false
        ? null
        : { initialDelay: 500, maxDelay: 30000, jitter: 0.5, ...(options.reconnect ?? {}) };
    this._ping =
      options.ping === false ? null : { interval: 20000, timeout: 10000, ...(options.ping ?? {}) };
    this._retryDelay = options.retryDelay ?? 1000;
    this._idPrefix = options.idPrefix ?? randomId();
    this._maxQueued = options.maxQueuedEvents ?? 10000;
    this._random = options.random ?? Math.random;

    /** @type {'idle' | 'connecting' | 'joining' | 'joined' | 'closed'} */
    this.state = 'idle';
    /** @type {string | null} current room epoch */
    this.epoch = null;
    /** @type {number | null} last offset handled (event, last chunk, chat, caught_up) */
    this.offset = null;
    /** @type {{ max_frame_bytes: number, max_upload_bytes: number, chunk_bytes: number }} */
    this.limits = { ...DEFAULT_LIMITS };
    /** @type {Map<string, { id: string, role: string }>} presence, rebuilt on every joined */
    this.members = new Map();
    /** @type {{ id: string, role: string } | null} */
    this.you = null;
    /** @type {string | null} */
    this.room = null;
    /** @type {any[]} page timeline from the last joined */
    this.pages = [];
    /** @type {{ urls: string[], username?: string, credential?: string }[]} STUN/TURN servers from the last joined (§19.2) */
    this.iceServers = [];

    this._url = '';
    /** @type {string | (() => string | Promise<string>)} */
    this._token = '';
    this._ws = null;
    this._gen = 0;
    this._attempt = 0;
    this._everJoined = false;
    this._counter = 0;
    this._pingCounter = 0;
    this._reconnectTimer = null;
    this._pingTimer = null;
    this._pongTimer = null;
    this._retryTimer = null;
    /** @type {{ offset: number, count: number, next: number, parts: (string | Uint8Array)[] } | null} */
    this._assembly = null;
    /** @type {Map<string, { id: string, text: string, resolve: Function, reject: Function, notBefore: number }>} */
    this._chats = new Map();
    /** @type {Map<string, any>} events and native pages in publish order, until acked */
    this._outbox = new Map();
    this._flushing = false;
    this._flushAgain = false;
    /** @type {Set<string>} */
    this._seenChat = new Set();
    /** @type {{ resolve: Function, reject: Function, promise: Promise<void> } | null} */
    this._end = null;
    /** @type {{ resolve: Function, reject: Function, promise: Promise<any> } | null} */
    this._firstJoin = null;
  }

  /** Codec name of this client. */
  get codec() {
    return this._codec.name;
  }

  /**
   * Opens the connection and joins the room. `token` is a JWT or a function returning one (called
   * for every connection attempt, so an expired token can be replaced; with a function, close 4500
   * `token_expired` reconnects instead of stopping). Resolves with the first `joined` frame.
   *
   * @param {string} url e.g. `wss://relay.example.com/ws`
   * @param {string | (() => string | Promise<string>)} token
   * @returns {Promise<any>}
   */
  connect(url, token) {
    if (this.state !== 'idle') throw new Error(`connect() called in state ${this.state}`);
    this._url = this._room ? withQuery(url, 'room', this._room) : url;
    this._token = token;
    let resolve, reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {});
    this._firstJoin = { resolve, reject, promise };
    this._open();
    return promise;
  }

  /** Closes the connection for good (no reconnect); pending sends are rejected. */
  close() {
    if (this.state === 'closed') return;
    this._stop({ code: 1000, reason: 'client closed', byClient: true });
  }

  /**
   * Sends a chat message. Resolves with the `ack` once stored. Unacked messages are resent with
   * the same id after every reconnect (idempotent, §8).
   *
   * @param {string} text 1-8192 bytes of UTF-8
   * @param {{ id?: string }} [opts]
   * @returns {Promise<{ id: string, offset: number, duplicate: boolean }>}
   */
  sendChat(text, opts = {}) {
    if (this.state === 'closed') return Promise.reject(new RelayError('closed', 'client is closed'));
    if (typeof text !== 'string' || text.length === 0) {
      return Promise.reject(new TypeError('chat text must be a non-empty string'));
    }
    const id = opts.id ?? this._nextId('c');
    const existing = this._chats.get(id);
    if (existing) return existing.promise;
    let resolve, reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {});
    this._chats.set(id, { id, text, resolve, reject, promise, notBefore: 0 });
    if (this.state === 'joined') this._send({ type: 'chat', id, text });
    return promise;
  }

  /**
   * Publishes an rrweb event (customers). The event is serialized once; it gets an id (so it is
   * idempotent and acked), is queued while disconnected and resent after the next join until its
   * `ack`. An event larger than `limits.chunk_bytes` is uploaded in `chunk` frames (§9).
   * Events are sent in publish order.
   *
   * @param {object} event an rrweb event
   * @param {{ id?: string }} [opts]
   * @returns {Promise<{ id: string, offset: number, duplicate: boolean }>}
   */
  publish(event, opts = {}) {
    const raw = event instanceof RawEvent ? event : new RawEvent(JSON.stringify(event));
    return this._enqueue({ kind: 'event', id: opts.id ?? this._nextId('e'), raw });
  }

  /**
   * Reports that the customer's app shows a native screen (§11.1). Queued and resent like events.
   *
   * @param {{ page_id: string, title?: string, template?: string, fields?: Record<string, string> }} page
   * @param {{ id?: string }} [opts]
   * @returns {Promise<{ id: string, offset: number, duplicate: boolean }>}
   */
  reportNativePage(page, opts = {}) {
    return this._enqueue({ kind: 'native_page', id: opts.id ?? this._nextId('n'), page });
  }

  /**
   * Ends the session (agents, §5.7). Resolves when the relay closes the connection with 4502.
   * @returns {Promise<void>}
   */
  end() {
    if (this._end) return this._end.promise;
    if (this.state === 'closed') return Promise.reject(new RelayError('closed', 'client is closed'));
    let resolve, reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {});
    this._end = { resolve, reject, promise };
    if (this.state === 'joined') this._send({ type: 'end' });
    return promise;
  }

  /**
   * Sends guidance to the room's customers (agents with the `guide` capability, §18): fire and
   * forget, never queued (guidance is only meaningful now). Returns whether it was handed to the
   * socket; refusals arrive as `error` events with the frame's id.
   * @param {{ kind: 'pointer' | 'highlight' | 'annotate' | 'clear', x?: number, y?: number, node?: number, text?: string }} guide
   * @param {{ id?: string }} [opts]
   * @returns {boolean}
   */
  sendGuide(guide, opts = {}) {
    if (this.state !== 'joined') return false;
    return this._send(opts.id ? { type: 'guide', id: opts.id, guide } : { type: 'guide', guide });
  }

  /**
   * Sends a call signaling message (§19) to participant `to` (of the other role), or to every
   * participant of the other role. Fire and forget; returns whether it was handed to the socket.
   * @param {{ kind: 'offer' | 'answer' | 'ice' | 'hangup', call: string, sdp?: string, candidate?: string, sdp_mid?: string, sdp_mline_index?: number, reason?: string }} signal
   * @param {string} [to]
   * @returns {boolean}
   */
  sendSignal(signal, to) {
    if (this.state !== 'joined') return false;
    return this._send(to ? { type: 'signal', signal, to } : { type: 'signal', signal });
  }

  /** Number of events and native pages not acked yet. */
  get pendingEvents() {
    return this._outbox.size;
  }

  /** Number of chat messages not acked yet. */
  get pendingChats() {
    return this._chats.size;
  }

  // ---------------------------------------------------------------------------------------------
  // Connection lifecycle

  /** @param {string} kind */
  _nextId(kind) {
    return `${this._idPrefix}-${kind}${++this._counter}`;
  }

  async _open() {
    const gen = ++this._gen;
    this.state = 'connecting';
    let token;
    try {
      token = typeof this._token === 'function' ? await this._token() : this._token;
    } catch (e) {
      if (gen !== this._gen || this.state === 'closed') return;
      this.emit('error', { code: 'token_unavailable', message: String(e?.message ?? e), error: e });
      this._onClose(1006, 'token provider failed');
      return;
    }
    if (gen !== this._gen || this.state === 'closed') return;

    const protocols = [this._codec.subprotocol];
    let url = this._url;
    if (this._tokenTransport === 'query') url = withQuery(url, 'token', token);
    else protocols.push(TOKEN_SUBPROTOCOL_PREFIX + token);

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
    ws.onmessage = (msg) => {
      if (gen !== this._gen) return;
      this._onData(msg.data);
    };
    ws.onerror = () => {
      // A close event follows; nothing to do here.
    };
    ws.onclose = (e) => {
      if (gen !== this._gen) return;
      this._onClose(e?.code ?? 1006, e?.reason ?? '');
    };
  }

  /**
   * Drops the current socket as if the network failed (used by the keep-alive).
   * @param {number} code
   * @param {string} reason
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
   */
  _onClose(code, reason) {
    if (this.state === 'closed') return;
    this._ws = null;
    this._gen++; // anything still in flight belongs to the old connection
    this._stopPing();
    this._assembly = null; // a partial large event is delivered again after resume (§9.4)
    if (code === CloseCodes.ROOM_CLOSED && this._end) this._end.resolve();
    const willReconnect =
      this._reconnect !== null && shouldReconnect(code, typeof this._token === 'function');
    this.emit('disconnected', { code, reason, willReconnect });
    if (!willReconnect) {
      this._stop({ code, reason, byClient: false });
      return;
    }
    const { initialDelay, maxDelay, jitter } = this._reconnect;
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

  /** @param {{ code: number, reason: string, byClient: boolean }} info */
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

  _startPing() {
    this._stopPing();
    if (!this._ping) return;
    const { interval, timeout } = this._ping;
    this._pingTimer = setInterval(() => {
      if (this._pongTimer) return; // still waiting for the previous answer
      this._send({ type: 'ping', id: `p-${++this._pingCounter}` });
      this._pongTimer = setTimeout(() => {
        this._pongTimer = null;
        this._dropSocket(1006, 'keep-alive timeout');
      }, timeout);
    }, interval);
  }

  _stopPing() {
    clearInterval(this._pingTimer);
    clearTimeout(this._pongTimer);
    this._pingTimer = null;
    this._pongTimer = null;
  }

  /**
   * @param {Record<string, unknown>} frame
   * @returns {boolean} whether it was handed to the socket
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

  // ---------------------------------------------------------------------------------------------
  // Incoming frames

  /** @param {unknown} data */
  _onData(data) {
    // Any frame proves the connection alive.
    if (this._pongTimer) {
      clearTimeout(this._pongTimer);
      this._pongTimer = null;
    }
    let f;
    try {
      f = this._codec.decode(data);
    } catch (e) {
      this.emit('error', { code: 'client_decode', message: String(e?.message ?? e), error: e });
      return;
    }
    switch (f.type) {
      case 'joined':
        return this._onJoined(f);
      case 'event':
        this.emit('event', f.event, { offset: f.offset });
        this.offset = f.offset;
        return;
      case 'chunk':
        return this._onChunk(f);
      case 'chat':
        return this._onChat(f);
      case 'caught_up':
        this.offset = f.offset;
        this.emit('caught_up', f);
        return;
      case 'resync':
        this.epoch = f.epoch;
        this._assembly = null;
        this.emit('resync', { epoch: f.epoch, reason: f.reason, onJoin: false });
        return;
      case 'ack':
        return this._onAck(f);
      case 'chunk_ack': {
        const entry = this._outbox.get(f.id);
        entry?.upload?.acked.add(f.index);
        this.emit('chunk_ack', f);
        return;
      }
      case 'error':
        return this._onError(f);
      case 'pong':
        return;
      case 'member_joined':
        if (f.member) this.members.set(f.member.id, f.member);
        this.emit('member_joined', f.member);
        return;
      case 'member_left':
        if (f.member) this.members.delete(f.member.id);
        this.emit('member_left', f.member);
        return;
      case 'snapshot_request':
        this.emit('snapshot_request', { reason: f.reason });
        return;
      case 'guide': // agent guidance, customers only (§18); not an entry: offset not kept
        this.emit('guide', f.guide, { from: f.from, offset: f.offset });
        return;
      case 'signal': // call signaling (§19)
        this.emit('signal', f.signal, { from: f.from });
        return;
      default:
        this.emit('unknown', f); // unknown server frame types are ignored (§2)
    }
  }

  /** @param {Record<string, any>} f */
  _onJoined(f) {
    const reconnected = this._everJoined;
    this._everJoined = true;
    this.epoch = f.epoch;
    this.room = f.room ?? this.room;
    this.you = f.you ?? this.you;
    this.pages = f.pages ?? [];
    this.iceServers = Array.isArray(f.ice_servers) ? f.ice_servers : [];
    if (f.limits) this.limits = { ...DEFAULT_LIMITS, ...f.limits };
    this.members = new Map((f.members ?? []).map((m) => [m.id, m]));
    this._assembly = null;
    this._attempt = 0;
    this.state = 'joined';
    if (f.mode !== 'resume') {
      // fresh or resync: the offsets of before mean nothing now
      this.offset = null;
    }
    this.emit('joined', f, { reconnected });
    if (f.mode === 'resync') this.emit('resync', { epoch: f.epoch, reason: f.reason, onJoin: true });
    if (this._firstJoin) {
      this._firstJoin.resolve(f);
      this._firstJoin = null;
    }
    // Unacked chat, with the original ids (§8).
    for (const c of this._chats.values()) this._send({ type: 'chat', id: c.id, text: c.text });
    if (this._end) this._send({ type: 'end' });
    this._flush();
  }

  /** @param {Record<string, any>} f */
  _onChunk(f) {
    if (f.index === 0) this._assembly = { offset: f.offset, count: f.count, next: 0, parts: [] };
    const a = this._assembly;
    if (!a || a.offset !== f.offset || a.count !== f.count || a.next !== f.index) {
      this._assembly = null;
      this.emit('error', {
        code: 'client_chunk_sequence',
        message: `unexpected chunk ${f.index}/${f.count} at offset ${f.offset}`,
      });
      return;
    }
    a.parts.push(f.data);
    a.next++;
    if (a.next < a.count) return;
    this._assembly = null;
    let event;
    try {
      event = JSON.parse(joinParts(a.parts));
    } catch (e) {
      this.emit('error', { code: 'client_decode', message: String(e?.message ?? e), error: e });
      return;
    }
    this.emit('event', event, { offset: f.offset, chunked: true });
    this.offset = f.offset;
  }

  /** @param {Record<string, any>} f */
  _onChat(f) {
    const key = `${f.from?.id ?? ''}\u0000${f.id}`;
    if (!this._seenChat.has(key)) {
      this._seenChat.add(key);
      if (this._seenChat.size > SEEN_CHAT_LIMIT) {
        this._seenChat.delete(this._seenChat.values().next().value);
      }
      this.emit('chat', {
        id: f.id,
        text: f.text,
        from: f.from,
        ts: f.ts,
        offset: f.offset,
        own: !!this.you && f.from?.id === this.you.id,
      });
    }
    this.offset = f.offset;
  }

  /** @param {Record<string, any>} f */
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

  /** @param {Record<string, any>} f */
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

  /** @param {{ kind: 'event' | 'native_page', id: string, raw?: RawEvent, page?: object }} item */
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
      const [oldId, old] = this._outbox.entries().next().value;
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

  /** Sends every outbox entry not sent on the current connection, in order. */
  async _flush() {
    if (this._flushing) {
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
          if (size <= this.limits.chunk_bytes) {
            if (this._send({ type: 'event', id: entry.id, event: entry.raw })) entry.sentGen = gen;
            continue;
          }
          if (size > this.limits.max_upload_bytes) {
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

  /**
   * Serialized once, hashed and sliced on character boundaries (§9.1). JSON slices are strings;
   * MessagePack slices are sent as `bin` (cut on character boundaries too, which is allowed).
   * @param {RawEvent} raw
   */
  async _prepareUpload(raw) {
    const bytes = raw.bytes;
    const digest = await sha256Digest(bytes);
    const parts = sliceUtf8(bytes, this.limits.chunk_bytes);
    const slices = this._codec.name === 'json' ? parts.map((p) => utf8Decode(p)) : parts;
    return { size: bytes.length, digest, count: slices.length, slices, acked: new Set() };
  }

  /**
   * Sends the slices without a `chunk_ack`; if every slice is acked but no `ack` came, the whole
   * upload again (§9.2).
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

/** @param {(string | Uint8Array)[]} parts */
function joinParts(parts) {
  if (parts.every((p) => typeof p === 'string')) return parts.join('');
  const bufs = parts.map((p) => (typeof p === 'string' ? utf8Encode(p) : p));
  const total = bufs.reduce((n, b) => n + b.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const b of bufs) {
    out.set(b, at);
    at += b.length;
  }
  return utf8Decode(out);
}
