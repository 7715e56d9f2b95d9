// One naming convention in the JS API: camelCase events and fields, wire names (snake_case)
// mapped in src/wire.js; the 0.1 names keep working as deprecated aliases.

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { RelayClient, CallManager, Emitter } from '../src/index.js';
import { fakeWebSocket, waitFor, JOINED } from './fake-ws.js';

async function joinedClient(joined = {}) {
  const fake = fakeWebSocket();
  const client = new RelayClient({ WebSocket: fake.FakeWebSocket, ping: false, idPrefix: 'x' });
  const seen = [];
  client.on('joined', (f) => seen.push(f));
  const p = client.connect('ws://relay.test/ws', 'TKN');
  await waitFor(() => fake.sockets.length === 1);
  fake.last().open();
  fake.last().receive(JOINED(joined));
  await p;
  return { client, ws: fake.last(), joined: seen[0] };
}

test('joined: camelCase fields (iceServers, limits.chunkBytes, pages[].pageId); wire names readable as aliases', async () => {
  const ice = [{ urls: ['stun:stun.example:3478'] }];
  const pages = [{ kind: 'native', url: 'native://sheet', page_id: 'sheet', offset: 3, ts: 9 }];
  const { client, joined } = await joinedClient({ ice_servers: ice, pages, future_field: 1 });
  assert.deepEqual(joined.iceServers, ice);
  assert.equal(joined.futureField, 1, 'unknown fields come through, camelCased');
  assert.deepEqual(Object.keys(joined).filter((k) => k.includes('_')), [], 'no snake_case key is enumerable');
  assert.equal(joined.limits.chunkBytes, 524032);
  assert.equal(client.limits.maxFrameBytes, 1048576);
  assert.equal(client.limits.maxUploadBytes, 67108864);
  assert.deepEqual(client.iceServers, ice);
  assert.deepEqual(client.pages, [{ kind: 'native', url: 'native://sheet', pageId: 'sheet', offset: 3, ts: 9 }]);
  assert.deepEqual(JSON.parse(JSON.stringify(client.pages[0])).page_id, undefined, 'serialized once, camelCase');
  // deprecated 0.1 names
  assert.deepEqual(joined.ice_servers, ice);
  assert.equal(client.limits.chunk_bytes, 524032);
  assert.equal(client.limits.max_frame_bytes, 1048576);
  assert.equal(client.pages[0].page_id, 'sheet');
  client.close();
});

test('limits before any joined are camelCase too', () => {
  const client = new RelayClient({ WebSocket: fakeWebSocket().FakeWebSocket });
  assert.deepEqual(client.limits, { maxFrameBytes: 1048576, maxUploadBytes: 67108864, chunkBytes: 524032 });
  assert.equal(client.limits.chunk_bytes, 524032);
});

test('client events are camelCase; a 0.1 name listens to the same event, and unsubscribes', async () => {
  const { client, ws } = await joinedClient();
  const got = [];
  client.on('memberJoined', (m) => got.push(['memberJoined', m.id]));
  const offOld = client.on('member_joined', (m) => got.push(['member_joined', m.id]));
  client.on('memberLeft', (m) => got.push(['memberLeft', m.id]));
  client.on('member_left', (m) => got.push(['member_left', m.id]));
  client.on('caughtUp', (f) => got.push(['caughtUp', f.offset]));
  client.on('caught_up', (f) => got.push(['caught_up', f.offset]));
  client.on('snapshotRequest', (r) => got.push(['snapshotRequest', r.reason]));
  client.on('snapshot_request', (r) => got.push(['snapshot_request', r.reason]));
  ws.receive({ type: 'member_joined', member: { id: 'ag-1', role: 'agent' } });
  ws.receive({ type: 'caught_up', offset: 4 });
  ws.receive({ type: 'snapshot_request', reason: 'agent_joined' });
  offOld();
  client.off('member_left', () => {}); // unknown listener: nothing happens
  ws.receive({ type: 'member_joined', member: { id: 'ag-2', role: 'agent' } });
  ws.receive({ type: 'member_left', member: { id: 'ag-1', role: 'agent' } });
  assert.deepEqual(got, [
    ['memberJoined', 'ag-1'],
    ['member_joined', 'ag-1'],
    ['caughtUp', 4],
    ['caught_up', 4],
    ['snapshotRequest', 'agent_joined'],
    ['snapshot_request', 'agent_joined'],
    ['memberJoined', 'ag-2'],
    ['memberLeft', 'ag-1'],
    ['member_left', 'ag-1'],
  ]);
  client.close();
});

test('signals: sdpMid / sdpMLineIndex in the API, sdp_mid / sdp_mline_index on the wire, both accepted', async () => {
  const { client, ws } = await joinedClient();
  const got = [];
  client.on('signal', (s, meta) => got.push([s, meta.from.id]));
  ws.receive({
    type: 'signal',
    from: { id: 'ag-1', role: 'agent' },
    signal: { kind: 'ice', call: 'c1', candidate: 'candidate:1', sdp_mid: '0', sdp_mline_index: 0 },
  });
  assert.deepEqual(got, [[{ kind: 'ice', call: 'c1', candidate: 'candidate:1', sdpMid: '0', sdpMLineIndex: 0 }, 'ag-1']]);
  assert.equal(got[0][0].sdp_mline_index, 0, '0.1 name readable');

  client.sendSignal({ kind: 'ice', call: 'c1', candidate: 'candidate:2', sdpMid: '1', sdpMLineIndex: 1 }, 'ag-1');
  client.sendSignal({ kind: 'ice', call: 'c1', candidate: 'candidate:3', sdp_mid: '2', sdp_mline_index: 2 });
  const sent = ws.frames().filter((f) => f.type === 'signal');
  assert.deepEqual(sent, [
    { type: 'signal', to: 'ag-1', signal: { kind: 'ice', call: 'c1', candidate: 'candidate:2', sdp_mid: '1', sdp_mline_index: 1 } },
    { type: 'signal', signal: { kind: 'ice', call: 'c1', candidate: 'candidate:3', sdp_mid: '2', sdp_mline_index: 2 } },
  ]);
  client.close();
});

test('reportNativePage takes pageId (or the 0.1 page_id) and sends page_id', async () => {
  const { client, ws } = await joinedClient();
  client.reportNativePage({ pageId: 'checkout', title: 'Payment' }, { id: 'n1' });
  client.reportNativePage({ page_id: 'sheet' }, { id: 'n2' });
  await waitFor(() => ws.frames().filter((f) => f.type === 'native_page').length === 2);
  assert.deepEqual(
    ws.frames().filter((f) => f.type === 'native_page'),
    [
      { type: 'native_page', id: 'n1', page: { page_id: 'checkout', title: 'Payment' } },
      { type: 'native_page', id: 'n2', page: { page_id: 'sheet' } },
    ],
  );
  client.close();
});

test('CallManager events remoteStream / connectionState; 0.1 names remote-stream / connection-state alias them', () => {
  const client = new RelayClient({ WebSocket: fakeWebSocket().FakeWebSocket });
  const calls = new CallManager(client, { RTCPeerConnection: class {} });
  const got = [];
  calls.on('remoteStream', () => got.push('remoteStream'));
  calls.on('remote-stream', () => got.push('remote-stream'));
  calls.on('connectionState', (s) => got.push(`connectionState:${s}`));
  calls.on('connection-state', (s) => got.push(`connection-state:${s}`));
  calls.emit('remoteStream', {});
  calls.emit('connectionState', 'connected');
  assert.deepEqual(got, ['remoteStream', 'remote-stream', 'connectionState:connected', 'connection-state:connected']);
  calls.destroy();
});

test('Emitter without aliases treats every name as itself', () => {
  const e = new Emitter();
  const got = [];
  e.on('member_joined', () => got.push('snake'));
  e.on('memberJoined', () => got.push('camel'));
  e.emit('member_joined');
  assert.deepEqual(got, ['snake']);
});

test('a joined without limits keeps the last ones (and reports them)', async () => {
  const { client, ws } = await joinedClient({ limits: { max_frame_bytes: 4096, max_upload_bytes: 8192, chunk_bytes: 2048 } });
  const seen = [];
  client.on('joined', (f) => seen.push(f.limits));
  ws.receive(JOINED({ mode: 'resume', limits: undefined }));
  assert.deepEqual(client.limits, { maxFrameBytes: 4096, maxUploadBytes: 8192, chunkBytes: 2048 });
  assert.deepEqual(seen, [client.limits]);
  client.close();
});
