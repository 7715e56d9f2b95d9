// Voice calls (docs/protocol.md §19): WebRTC with the relay as the signaling channel. Media
// flows peer to peer (or through the TURN server the relay names in `joined.ice_servers`).
//
// The customer must consent before the microphone is touched: an incoming offer calls the
// `consent` option, and `getUserMedia` runs only once it resolved true. Declining sends
// `hangup` with reason `declined`.

import { Emitter } from './emitter.js';
import { CALL_EVENT_ALIASES } from './wire.js';

/** Call states, in order: `idle` → `calling` (we offered) | `ringing` (we were offered, asking
 * for consent) → `connecting` → `connected` → `ended`. */
/** @type {readonly import('../types/chat.js').CallState[]} */
export const CallStates = Object.freeze(['idle', 'calling', 'ringing', 'connecting', 'connected', 'ended']);

function callId() {
  const bytes = new Uint8Array(8);
  globalThis.crypto.getRandomValues(bytes);
  return 'call-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * One participant's voice calls over a RelayClient: at most one call at a time.
 *
 * Events: `state` (state, detail), `incoming` ({ call, from }), `remoteStream` (MediaStream),
 * `connectionState` (RTCPeerConnection.connectionState), `ended` ({ call, reason, by }),
 * `error` ({ code, message, error }).
 */
export class CallManager extends Emitter {
  /**
   * @param {import('../types/core.js').RelayClient} client
   * @param {{
   *   consent?: (offer: { call: string, from: import('../types/core.js').Member }) => boolean | Promise<boolean>,
   *   RTCPeerConnection?: any,
   *   getUserMedia?: (constraints: any) => Promise<any>,
   *   constraints?: any,
   *   rtcConfig?: Record<string, any>,
   *   audioElement?: any,
   * }} [options]
   *   `consent` is required to answer calls (without it incoming calls are declined).
   *   `audioElement`: an <audio> element that plays the remote stream (autoplay).
   */
  constructor(client, options = {}) {
    super(CALL_EVENT_ALIASES);
    this.client = client;
    this._consent = options.consent ?? null;
    this._PC = options.RTCPeerConnection ?? globalThis.RTCPeerConnection;
    this._getUserMedia =
      options.getUserMedia ?? ((c) => globalThis.navigator.mediaDevices.getUserMedia(c));
    this._constraints = options.constraints ?? { audio: true, video: false };
    this._rtcConfig = options.rtcConfig ?? {};
    this._audio = options.audioElement ?? null;
    /** @type {'idle' | 'calling' | 'ringing' | 'connecting' | 'connected' | 'ended'} */
    this.state = 'idle';
    /** @type {string | null} */
    this.call = null;
    /** @type {import('../types/core.js').Member | null} the other side */
    this.peer = null;
    /** @type {any} */
    this.pc = null;
    /** @type {any} */
    this.localStream = null;
    /** @type {any} */
    this.remoteStream = null;
    /** @type {any[]} candidates that arrived before the remote description */
    this._early = [];
    /** @type {any[] | null} our candidates gathered before our offer/answer went out */
    this._outgoing = [];
    this._remoteSet = false;
    this._offs = [
      client.on('signal', (s, meta) => this._onSignal(s, meta?.from)),
      client.on('closed', () => this._end('closed', 'local', false)),
      client.on('memberLeft', (m) => {
        if (this.peer && m?.id === this.peer.id && this.state !== 'idle') this._end('peer_left', 'remote', false);
      }),
    ];
  }

  /**
   * Calls a participant of the other role (usually the agent calls the customer). Resolves when
   * the offer is sent; follow `state` for the rest.
   * @param {string} [to] participant id; default: the only participant of the other role
   */
  async start(to) {
    if (this.state !== 'idle' && this.state !== 'ended') throw new Error(`a call is ${this.state}`);
    const peer = to ? this.client.members.get(to) ?? this._unlisted(to) : this._otherRole();
    if (!peer) throw new Error('nobody of the other role to call');
    this.call = callId();
    this.peer = peer;
    this._setState('calling');
    try {
      const stream = await this._media();
      if (/** @type {string} */ (this.state) !== 'calling') return; // _setState changes it meanwhile
      const pc = this._newPeerConnection();
      for (const t of stream.getTracks()) pc.addTrack(t, stream);
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      if (/** @type {string} */ (this.state) !== 'calling') return; // _setState changes it meanwhile
      this._signal({ kind: 'offer', sdp: pc.localDescription?.sdp ?? offer.sdp });
      this._flushOutgoing();
    } catch (e) {
      this._fail('call_failed', e);
    }
  }

  /** Ends the call (or declines a ringing one). */
  hangup(reason = 'ended') {
    if (this.state === 'idle' || this.state === 'ended') return;
    this._end(reason, 'local', true);
  }

  /** Stops following the client; ends a call in progress. */
  destroy() {
    this.hangup('ended');
    for (const off of this._offs) off();
    this._offs = [];
  }

  // ---------------------------------------------------------------------------------------------

  _otherRole() {
    const mine = this.client.you?.role;
    const others = [...this.client.members.values()].filter((m) => m.role !== mine);
    return others.length === 1 ? others[0] : null;
  }

  /**
   * A participant not (yet) in the presence list: calls go to the other role (§19).
   * @param {string} id
   * @returns {import('../types/core.js').Member}
   */
  _unlisted(id) {
    return { id, role: this.client.you?.role === 'agent' ? 'customer' : 'agent' };
  }

  /**
   * @param {any} s
   * @param {import('../types/core.js').Member | undefined} from
   */
  async _onSignal(s, from) {
    if (!s || !from || typeof s.call !== 'string') return;
    const current = this.call !== null && s.call === this.call && this.state !== 'ended';
    switch (s.kind) {
      case 'offer':
        if (current) return;
        if (this.state !== 'idle' && this.state !== 'ended') {
          this.client.sendSignal({ kind: 'hangup', call: s.call, reason: 'busy' }, from.id);
          return;
        }
        return this._incoming(s, from);
      case 'answer':
        if (!current || this.state !== 'calling' || !this.pc) return;
        try {
          this.peer = from;
          this._setState('connecting');
          await this.pc.setRemoteDescription({ type: 'answer', sdp: s.sdp });
          this._remoteSet = true;
          await this._flushEarly();
        } catch (e) {
          this._fail('answer_failed', e);
        }
        return;
      case 'ice':
        if (!current) return;
        if (!this._remoteSet || !this.pc) {
          this._early.push(s);
          return;
        }
        return this._addCandidate(s);
      case 'hangup':
        if (current) this._end(s.reason ?? 'ended', 'remote', false);
        return;
      default:
        return;
    }
  }

  /**
   * @param {any} s
   * @param {import('../types/core.js').Member} from
   */
  async _incoming(s, from) {
    this.call = s.call;
    this.peer = from;
    this._early = [];
    this._remoteSet = false;
    this._setState('ringing', { from });
    this.emit('incoming', { call: s.call, from });
    let ok = false;
    try {
      ok = this._consent ? await this._consent({ call: s.call, from }) : false;
    } catch {
      ok = false;
    }
    if (this.call !== s.call || this.state !== 'ringing') return; // hung up meanwhile
    if (!ok) {
      this._end('declined', 'local', true);
      return;
    }
    this._setState('connecting');
    try {
      // Only now, after consent, is the microphone touched.
      const stream = await this._media();
      if (this.call !== s.call || /** @type {string} */ (this.state) !== 'connecting') return;
      const pc = this._newPeerConnection();
      await pc.setRemoteDescription({ type: 'offer', sdp: s.sdp });
      this._remoteSet = true;
      for (const t of stream.getTracks()) pc.addTrack(t, stream);
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      if (this.call !== s.call || this.state === 'ended') return;
      this._signal({ kind: 'answer', sdp: pc.localDescription?.sdp ?? answer.sdp });
      this._flushOutgoing();
      await this._flushEarly();
    } catch (e) {
      this._fail('answer_failed', e);
    }
  }

  async _media() {
    this.localStream = await this._getUserMedia(this._constraints);
    return this.localStream;
  }

  _newPeerConnection() {
    const config = { iceServers: this.client.iceServers ?? [], ...this._rtcConfig };
    const pc = new this._PC(config);
    this.pc = pc;
    this._outgoing = [];
    const call = this.call;
    pc.onicecandidate = (/** @type {any} */ e) => {
      if (this.call !== call || this.state === 'ended') return;
      const c = e?.candidate;
      /** @type {Omit<import('../types/core.js').Signal, 'call'>} */
      const sig = { kind: 'ice', candidate: c ? c.candidate ?? '' : '' }; // '': end of candidates
      if (c?.sdpMid != null) sig.sdpMid = c.sdpMid;
      if (c?.sdpMLineIndex != null) sig.sdpMLineIndex = c.sdpMLineIndex;
      // Never ahead of our offer/answer: the other side would not know the call yet.
      if (this._outgoing) this._outgoing.push(sig);
      else this._signal(sig);
    };
    pc.ontrack = (/** @type {any} */ e) => {
      const stream = e?.streams?.[0] ?? null;
      if (!stream || stream === this.remoteStream) return;
      this.remoteStream = stream;
      if (this._audio) {
        this._audio.srcObject = stream;
        this._audio.play?.()?.catch?.(() => {});
      }
      this.emit('remoteStream', stream);
    };
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      const s = pc.connectionState;
      this.emit('connectionState', s);
      if (s === 'connected') this._setState('connected');
      else if (s === 'failed') this._end('failed', 'local', true);
    };
    return pc;
  }

  _flushOutgoing() {
    const out = this._outgoing ?? [];
    this._outgoing = null;
    for (const sig of out) this._signal(sig);
  }

  async _flushEarly() {
    const early = this._early;
    this._early = [];
    for (const s of early) await this._addCandidate(s);
  }

  /** @param {any} s */
  async _addCandidate(s) {
    try {
      if (s.candidate === '') await this.pc.addIceCandidate(null);
      else {
        await this.pc.addIceCandidate({
          candidate: s.candidate,
          sdpMid: s.sdpMid ?? null,
          sdpMLineIndex: s.sdpMLineIndex ?? null,
        });
      }
    } catch (e) {
      this.emit('error', { code: 'ice_candidate', message: String(e?.message ?? e), error: e });
    }
  }

  /** @param {Omit<import('../types/core.js').Signal, 'call'>} body */
  _signal(body) {
    if (!this.call) return false;
    return this.client.sendSignal({ ...body, call: this.call }, this.peer?.id);
  }

  /**
   * @param {string} code
   * @param {any} e
   */
  _fail(code, e) {
    this.emit('error', { code, message: String(e?.message ?? e), error: e });
    this._end('failed', 'local', true);
  }

  /**
   * @param {string} reason
   * @param {'local' | 'remote'} by
   * @param {boolean} tell whether to send `hangup`
   */
  _end(reason, by, tell) {
    if (this.state === 'idle' || this.state === 'ended') return;
    const call = this.call;
    if (tell) this._signal({ kind: 'hangup', reason });
    try {
      this.pc?.close();
    } catch {
      // ignore
    }
    for (const t of this.localStream?.getTracks?.() ?? []) t.stop();
    if (this._audio) this._audio.srcObject = null;
    this.pc = null;
    this.localStream = null;
    this.remoteStream = null;
    this._early = [];
    this._outgoing = [];
    this._remoteSet = false;
    this._setState('ended', { reason, by });
    this.emit('ended', { call, reason, by });
  }

  /**
   * @param {CallManager['state']} state
   * @param {Record<string, any>} [detail]
   */
  _setState(state, detail = {}) {
    if (state === this.state) return;
    this.state = state;
    this.emit('state', state, { call: this.call, ...detail });
  }
}
