// RelayClient: one participant's connection to an assist-relay room, with join/resume,
// reconnect, chat, event publishing (chunked uploads for large events), chunked delivery and
// keep-alive. Protocol: docs/protocol.md (v1).
//
// The class keeps the public API and the state; its private methods live by concern in
// connection.js (socket, join, keep-alive, reconnect), inbound.js (incoming frames, catch-up
// and resume), outbox.js (queued sends, acks, retries) and upload.js (chunked uploads), and are
// installed on the prototype below.

import { Emitter } from './emitter.js';
import { RawEvent, getCodec } from './codec.js';
import { RelayError } from './protocol.js';
import { CLIENT_EVENT_ALIASES, defaultLimits, nativePageToWire, signalToWire } from './wire.js';
import { ConnectionMethods, withQuery } from './connection.js';
import { InboundMethods } from './inbound.js';
import { OutboxMethods } from './outbox.js';
import { UploadMethods } from './upload.js';

export { RETRYABLE_ERRORS, CloseCodes, RelayError, shouldReconnect } from './protocol.js';

/**
 * A RelayClient with the private methods installed below from connection.js, inbound.js,
 * outbox.js and upload.js (their `this`; for tsc --checkJs).
 * @typedef {RelayClient & ConnectionMethods & InboundMethods & OutboxMethods & UploadMethods} ClientInternals
 */

/** @param {RelayClient} client */
const internals = (client) => /** @type {ClientInternals} */ (client);

function randomId() {
  const bytes = new Uint8Array(6);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
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
    super(CLIENT_EVENT_ALIASES);
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
    /** @type {import('../types/core.js').Limits} node limits from the last joined */
    this.limits = defaultLimits();
    /** @type {Map<string, import('../types/core.js').Member>} presence, rebuilt on every joined */
    this.members = new Map();
    /** @type {import('../types/core.js').Member | null} */
    this.you = null;
    /** @type {string | null} */
    this.room = null;
    /** @type {import('../types/core.js').PageRecord[]} page timeline from the last joined */
    this.pages = [];
    /** @type {import('../types/core.js').IceServer[]} STUN/TURN servers from the last joined (§19.2) */
    this.iceServers = [];

    this._url = '';
    /** @type {string | (() => string | Promise<string>)} */
    this._token = '';
    /** @type {any} the WebSocket of the current attempt */
    this._ws = null;
    this._gen = 0;
    this._attempt = 0;
    this._everJoined = false;
    this._counter = 0;
    this._pingCounter = 0;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._reconnectTimer = null;
    /** @type {ReturnType<typeof setInterval> | null} */
    this._pingTimer = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._pongTimer = null;
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._retryTimer = null;
    /** @type {{ offset: number, count: number, next: number, parts: (string | Uint8Array)[] } | null} */
    this._assembly = null;
    /** @type {Map<string, { id: string, text: string, resolve: Function, reject: Function, promise: Promise<any>, notBefore: number }>} */
    this._chats = new Map();
    /** @type {Map<string, any>} events and native pages in publish order, until acked */
    this._outbox = new Map();
    this._flushing = false;
    /** @type {boolean} */
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
    /** @type {Function} */
    let resolve = () => {};
    /** @type {Function} */
    let reject = () => {};
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {});
    this._firstJoin = { resolve, reject, promise };
    internals(this)._open();
    return promise;
  }

  /** Closes the connection for good (no reconnect); pending sends are rejected. */
  close() {
    if (this.state === 'closed') return;
    internals(this)._stop({ code: 1000, reason: 'client closed', byClient: true });
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
    /** @type {Function} */
    let resolve = () => {};
    /** @type {Function} */
    let reject = () => {};
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {});
    this._chats.set(id, { id, text, resolve, reject, promise, notBefore: 0 });
    if (this.state === 'joined') internals(this)._send({ type: 'chat', id, text });
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
    return internals(this)._enqueue({ kind: 'event', id: opts.id ?? this._nextId('e'), raw });
  }

  /**
   * Reports that the customer's app shows a native screen (§11.1). Queued and resent like events.
   *
   * @param {import('../types/core.js').NativePage} page `pageId` (0.1's `page_id` is accepted too)
   * @param {{ id?: string }} [opts]
   * @returns {Promise<{ id: string, offset: number, duplicate: boolean }>}
   */
  reportNativePage(page, opts = {}) {
    const wire = nativePageToWire(page);
    return internals(this)._enqueue({ kind: 'native_page', id: opts.id ?? this._nextId('n'), page: wire });
  }

  /**
   * Ends the session (agents, §5.7). Resolves when the relay closes the connection with 4502.
   * @returns {Promise<void>}
   */
  end() {
    if (this._end) return this._end.promise;
    if (this.state === 'closed') return Promise.reject(new RelayError('closed', 'client is closed'));
    /** @type {Function} */
    let resolve = () => {};
    /** @type {Function} */
    let reject = () => {};
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {});
    this._end = { resolve, reject, promise };
    if (this.state === 'joined') internals(this)._send({ type: 'end' });
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
    return internals(this)._send(opts.id ? { type: 'guide', id: opts.id, guide } : { type: 'guide', guide });
  }

  /**
   * Sends a call signaling message (§19) to participant `to` (of the other role), or to every
   * participant of the other role. Fire and forget; returns whether it was handed to the socket.
   * @param {import('../types/core.js').Signal} signal `sdpMid`, `sdpMLineIndex` (0.1's
   *   `sdp_mid`, `sdp_mline_index` are accepted too)
   * @param {string} [to]
   * @returns {boolean}
   */
  sendSignal(signal, to) {
    if (this.state !== 'joined') return false;
    const wire = signalToWire(signal);
    return internals(this)._send(to ? { type: 'signal', signal: wire, to } : { type: 'signal', signal: wire });
  }

  /** Number of events and native pages not acked yet. */
  get pendingEvents() {
    return this._outbox.size;
  }

  /** Number of chat messages not acked yet. */
  get pendingChats() {
    return this._chats.size;
  }

  /** @param {string} kind */
  _nextId(kind) {
    return `${this._idPrefix}-${kind}${++this._counter}`;
  }
}

// Copied as class methods are defined: non-enumerable, writable, configurable.
for (const methods of [ConnectionMethods, InboundMethods, OutboxMethods, UploadMethods]) {
  for (const name of Object.getOwnPropertyNames(methods.prototype)) {
    if (name === 'constructor') continue;
    Object.defineProperty(
      RelayClient.prototype,
      name,
      /** @type {PropertyDescriptor} */ (Object.getOwnPropertyDescriptor(methods.prototype, name)),
    );
  }
}
