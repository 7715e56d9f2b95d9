// Voice calls (§19): CallManager over two clients whose signal frames a fake relay routes, with a
// fake RTCPeerConnection. Consent comes before any getUserMedia; offer/answer/ICE/hang-up; the
// ICE servers of `joined` configure the peer connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { RelayClient, CallManager } from '../src/index.js';
import { fakeWebSocket, waitFor, JOINED } from './fake-ws.js';

const CUST = { id: 'cust-1', role: 'customer' };
const AGENT = { id: 'ag', role: 'agent' };
const ICE = [{ urls: ['turn:turn.test:3478'], username: '1:x', credential: 'c' }];

async function joined(me) {
  const fake = fakeWebSocket();
  const client = new RelayClient({ WebSocket: fake.FakeWebSocket, ping: false, reconnect: false });
  const p = client.connect('ws://relay.test/ws', 'T');
  await waitFor(() => fake.sockets.length === 1);
  const ws = fake.last();
  ws.open();
  ws.receive(JOINED({ you: me, members: [CUST, AGENT], ice_servers: ICE }));
  await p;
  return { client, ws };
}

/** Delivers every signal frame one side sent (and not yet delivered) to the other side. */
function relaySignals(a, b) {
  const pump = (from, to, who) => {
    const sent = from.ws.framesOf('signal');
    for (const f of sent.slice(from.delivered ?? 0)) {
      if (f.to && f.to !== to.client.you.id) continue;
      to.ws.receive({ type: 'signal', from: who, signal: f.signal });
    }
    from.delivered = sent.length;
  };
  return () => {
    pump(a, b, a.client.you);
    pump(b, a, b.client.you);
  };
}

function fakePeerConnections() {
  const made = [];
  class FakePC {
    constructor(config) {
      this.config = config;
      this.tracks = [];
      this.candidates = [];
      this.localDescription = null;
      this.remoteDescription = null;
      this.connectionState = 'new';
      this.closed = false;
      made.push(this);
    }
    addTrack(t) {
      this.tracks.push(t);
    }
    async createOffer() {
      return { type: 'offer', sdp: `offer-sdp-${made.indexOf(this)}` };
    }
    async createAnswer() {
      return { type: 'answer', sdp: `answer-sdp-${made.indexOf(this)}` };
    }
    async setLocalDescription(d) {
      this.localDescription = d;
      queueMicrotask(() => {
        this.onicecandidate?.({ candidate: { candidate: `candidate:${made.indexOf(this)} 1 udp 1 10.0.0.1 9 typ host`, sdpMid: '0', sdpMLineIndex: 0 } });
        this.onicecandidate?.({ candidate: null });
      });
      this._maybeConnect();
    }
    async setRemoteDescription(d) {
      this.remoteDescription = d;
      this._maybeConnect();
    }
    async addIceCandidate(c) {
      if (!this.remoteDescription) throw new Error('no remote description');
      this.candidates.push(c);
    }
    _maybeConnect() {
      if (this.localDescription && this.remoteDescription && this.connectionState !== 'connected') {
        this.connectionState = 'connected';
        queueMicrotask(() => {
          this.ontrack?.({ streams: [{ id: `remote-of-${made.indexOf(this)}` }] });
          this.onconnectionstatechange?.();
        });
      }
    }
    close() {
      this.closed = true;
    }
  }
  return { FakePC, made };
}

function fakeMedia(log) {
  return async (constraints) => {
    log.push(['getUserMedia', constraints]);
    const track = { stopped: false, stop() { this.stopped = true; } };
    return { getTracks: () => [track], track };
  };
}

test('an agent calls, the customer consents, and both connect with the relay ICE servers', async () => {
  const agent = await joined(AGENT);
  const cust = await joined(CUST);
  const pump = relaySignals(agent, cust);
  const { FakePC, made } = fakePeerConnections();
  const log = [];
  let consentAsked = null;
  let grant;
  const agentCall = new CallManager(agent.client, { RTCPeerConnection: FakePC, getUserMedia: fakeMedia(log) });
  const custCall = new CallManager(cust.client, {
    RTCPeerConnection: FakePC,
    getUserMedia: fakeMedia(log),
    consent: (offer) => {
      consentAsked = offer;
      return new Promise((r) => (grant = r));
    },
  });
  const states = [];
  custCall.on('state', (s) => states.push(s));

  await agentCall.start();
  assert.equal(agentCall.state, 'calling');
  assert.equal(agentCall.peer.id, 'cust-1', 'the only participant of the other role');
  await waitFor(() => agent.ws.framesOf('signal').length >= 1);
  const offer = agent.ws.framesOf('signal')[0];
  assert.equal(offer.to, 'cust-1');
  assert.equal(offer.signal.kind, 'offer');
  assert.deepEqual(made[0].config.iceServers, ICE, 'ICE servers from joined');
  assert.equal(log.length, 1, 'the agent took its microphone');

  pump();
  await waitFor(() => consentAsked !== null);
  assert.equal(custCall.state, 'ringing');
  assert.equal(consentAsked.from.id, 'ag');
  assert.equal(log.length, 1, 'no microphone access before consent');
  grant(true);
  await waitFor(() => cust.ws.framesOf('signal').some((f) => f.signal.kind === 'answer'));
  assert.equal(log.length, 2);
  await waitFor(() => agent.ws.framesOf('signal').length >= 3, 1000, 'the agent trickles ICE');
  pump();
  await waitFor(() => agentCall.state === 'connected' && custCall.state === 'connected');
  pump();
  await waitFor(() => made[0].candidates.length === 2 && made[1].candidates.length === 2, 1000, 'candidates both ways');
  assert.deepEqual(made[1].candidates[0], { candidate: 'candidate:0 1 udp 1 10.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 });
  assert.equal(made[1].candidates[1], null, 'end of candidates');
  assert.deepEqual(states, ['ringing', 'connecting', 'connected']);
  assert.ok(custCall.remoteStream);

  const ended = [];
  custCall.on('ended', (e) => ended.push(e));
  agentCall.hangup();
  assert.equal(agentCall.state, 'ended');
  assert.ok(made[0].closed);
  pump();
  assert.deepEqual(ended, [{ call: agentCall.call, reason: 'ended', by: 'remote' }]);
  assert.ok(made[1].closed);
  agentCall.destroy();
  custCall.destroy();
});

test('a declined call never touches the microphone and tells the caller', async () => {
  const agent = await joined(AGENT);
  const cust = await joined(CUST);
  const pump = relaySignals(agent, cust);
  const { FakePC } = fakePeerConnections();
  const log = [];
  const agentCall = new CallManager(agent.client, { RTCPeerConnection: FakePC, getUserMedia: fakeMedia(log) });
  const custCall = new CallManager(cust.client, {
    RTCPeerConnection: FakePC,
    getUserMedia: fakeMedia(log),
    consent: async () => false,
  });
  const agentEnded = [];
  agentCall.on('ended', (e) => agentEnded.push(e));
  await agentCall.start('cust-1');
  await waitFor(() => agent.ws.framesOf('signal').length >= 1);
  pump();
  await waitFor(() => cust.ws.framesOf('signal').some((f) => f.signal.kind === 'hangup'));
  assert.equal(custCall.state, 'ended');
  assert.equal(log.length, 1, 'only the caller took its microphone');
  pump();
  assert.deepEqual(agentEnded, [{ call: agentCall.call, reason: 'declined', by: 'remote' }]);
  agentCall.destroy();
  custCall.destroy();
});

test('without a consent callback incoming calls are declined; a second offer gets busy', async () => {
  const cust = await joined(CUST);
  const { FakePC } = fakePeerConnections();
  const log = [];
  const noConsent = new CallManager(cust.client, { RTCPeerConnection: FakePC, getUserMedia: fakeMedia(log) });
  cust.ws.receive({ type: 'signal', from: AGENT, signal: { kind: 'offer', call: 'k1', sdp: 'x' } });
  await waitFor(() => cust.ws.framesOf('signal').length === 1);
  assert.deepEqual(cust.ws.framesOf('signal')[0], { type: 'signal', signal: { kind: 'hangup', reason: 'declined', call: 'k1' }, to: 'ag' });
  assert.equal(log.length, 0);
  noConsent.destroy();

  const ringing = new CallManager(cust.client, {
    RTCPeerConnection: FakePC,
    getUserMedia: fakeMedia(log),
    consent: () => new Promise(() => {}),
  });
  cust.ws.receive({ type: 'signal', from: AGENT, signal: { kind: 'offer', call: 'k2', sdp: 'x' } });
  await waitFor(() => ringing.state === 'ringing');
  cust.ws.receive({ type: 'signal', from: { id: 'ag-2', role: 'agent' }, signal: { kind: 'offer', call: 'k3', sdp: 'x' } });
  await waitFor(() => cust.ws.framesOf('signal').length === 2);
  assert.deepEqual(cust.ws.framesOf('signal')[1].signal, { kind: 'hangup', call: 'k3', reason: 'busy' });
  // the caller gives up while we ring: ringing ends, still no microphone
  cust.ws.receive({ type: 'signal', from: AGENT, signal: { kind: 'hangup', call: 'k2' } });
  assert.equal(ringing.state, 'ended');
  assert.equal(log.length, 0);
  ringing.destroy();
});
