// Incoming frames of RelayClient: decoding, `joined` (fresh, resume or resync: epoch, offset,
// presence, limits, then resending what is unacked), live and caught-up events, reassembly of
// chunked events (§9.4), chat with duplicate suppression, presence, guide and signal frames.
// Acks and errors of our own sends are the outbox's (outbox.js); the socket is connection.js's.

import { utf8Decode, utf8Encode } from './codec.js';
import { joinedFromWire, signalFromWire } from './wire.js';

/** @typedef {import('./client.js').ClientInternals} ClientInternals */
/**
 * RelayClient's fields (declared in its constructor). tsc takes a mixin method's first write of a
 * field for a declaration on the mixin class, so such writes name the field's type from here.
 * @typedef {import('./client.js').RelayClient} RelayClientFields
 */

const SEEN_CHAT_LIMIT = 2000;

/**
 * Methods installed on RelayClient.prototype by client.js (`this` is the RelayClient; its
 * fields are declared in its constructor).
 */
export class InboundMethods {
  // ---------------------------------------------------------------------------------------------
  // Incoming frames

  /**
   * @param {unknown} data
   * @this {ClientInternals}
   */
  _onData(data) {
    // Any frame proves the connection alive.
    if (this._pongTimer) {
      clearTimeout(this._pongTimer);
      /** @type {RelayClientFields['_pongTimer']} */
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
        /** @type {RelayClientFields['offset']} */
        this.offset = f.offset;
        return;
      case 'chunk':
        return this._onChunk(f);
      case 'chat':
        return this._onChat(f);
      case 'caught_up':
        this.offset = f.offset;
        this.emit('caughtUp', f);
        return;
      case 'resync':
        /** @type {RelayClientFields['epoch']} */
        this.epoch = f.epoch;
        /** @type {RelayClientFields['_assembly']} */
        this._assembly = null;
        this.emit('resync', { epoch: f.epoch, reason: f.reason, onJoin: false });
        return;
      case 'ack':
        return this._onAck(f);
      case 'chunk_ack': {
        const entry = this._outbox.get(f.id);
        entry?.upload?.acked.add(f.index);
        this.emit('chunkAck', f);
        return;
      }
      case 'error':
        return this._onError(f);
      case 'pong':
        return;
      case 'member_joined':
        if (f.member) this.members.set(f.member.id, f.member);
        this.emit('memberJoined', f.member);
        return;
      case 'member_left':
        if (f.member) this.members.delete(f.member.id);
        this.emit('memberLeft', f.member);
        return;
      case 'snapshot_request':
        this.emit('snapshotRequest', { reason: f.reason });
        return;
      case 'guide': // agent guidance, customers only (§18); not an entry: offset not kept
        this.emit('guide', f.guide, { from: f.from, offset: f.offset });
        return;
      case 'signal': // call signaling (§19)
        this.emit('signal', signalFromWire(f.signal), { from: f.from });
        return;
      default:
        this.emit('unknown', f); // unknown server frame types are ignored (§2)
    }
  }

  /**
   * @param {Record<string, any>} wire
   * @this {ClientInternals}
   */
  _onJoined(wire) {
    const f = joinedFromWire(wire);
    const reconnected = this._everJoined;
    this._everJoined = true;
    this.epoch = f.epoch;
    this.room = f.room ?? this.room;
    this.you = f.you ?? this.you;
    this.pages = f.pages;
    this.iceServers = f.iceServers;
    if (wire.limits) this.limits = f.limits;
    else f.limits = this.limits; // this relay always sends them; keep the last ones otherwise
    /** @type {RelayClientFields['members']} */
    this.members = new Map(f.members.map((m) => [m.id, m]));
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
      /** @type {RelayClientFields['_firstJoin']} */
      this._firstJoin = null;
    }
    // Unacked chat, with the original ids (§8).
    for (const c of this._chats.values()) this._send({ type: 'chat', id: c.id, text: c.text });
    if (this._end) this._send({ type: 'end' });
    this._flush();
  }

  /**
   * @param {Record<string, any>} f
   * @this {ClientInternals}
   */
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

  /**
   * @param {Record<string, any>} f
   * @this {ClientInternals}
   */
  _onChat(f) {
    const key = `${f.from?.id ?? ''}\u0000${f.id}`;
    if (!this._seenChat.has(key)) {
      this._seenChat.add(key);
      if (this._seenChat.size > SEEN_CHAT_LIMIT) {
        this._seenChat.delete(/** @type {string} */ (this._seenChat.values().next().value));
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
