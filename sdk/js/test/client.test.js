import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';

import { RelayClient, RelayError, shouldReconnect } from '../src/index.js';
import { fakeWebSocket, waitFor, JOINED } from './fake-ws.js';

const FAST = { initialDelay: 5, maxDelay: 40, jitter: 0.5 };

/** A client on a fake socket, connected and joined (fresh). */
async function joinedClient(opts = {}, joined = {}) {
  const fake = fakeWebSocket();
  const client = new RelayClient({
    WebSocket: fake.FakeWebSocket,
    reconnect: FAST,
    ping: false,
    random: () => 0.5,
    idPrefix: 'x',
    ...opts,
  });
  const p = client.connect('ws://relay.test/ws', opts.token ?? 'TKN');
  await waitFor(() => fake.sockets.length === 1);
  fake.last().open();
  fake.last().receive(JOINED(joined));
  await p;
  return { client, fake, ws: fake.last() };
}

/** Drops the socket and waits for the next one, then opens it. */
async function reconnect(fake, code = 1006) {
  const n = fake.sockets.length;
  fake.last().serverClose(code);
  await waitFor(() => fake.sockets.length === n + 1, 2000, 'a new socket');
  fake.last().open();
  return fake.last();
}

test('connect offers the codec and token subprotocols and sends a fresh join', async () => {
  const { client, ws } = await joinedClient();
  assert.deepEqual(ws.protocols, ['assist-relay.v1.json', 'assist-relay.token.TKN']);
  assert.equal(ws.binaryType, 'arraybuffer');
  assert.deepEqual(ws.frames()[0], { type: 'join' });
  assert.equal(client.state, 'joined');
  assert.equal(client.epoch, 'E1');
  assert.deepEqual([...client.members.keys()], ['cust-1']);
  client.close();
});

test('token in the query and ?room= when asked', async () => {
  const { client, ws } = await joinedClient({ tokenTransport: 'query', room: 'room-1' });
  const u = new URL(ws.url);
  assert.equal(u.searchParams.get('token'), 'TKN');
  assert.equal(u.searchParams.get('room'), 'room-1');
  assert.deepEqual(ws.protocols, ['assist-relay.v1.json']);
  client.close();
});

test('reconnects with jittered exponential backoff and resumes from the last offset and epoch', async () => {
  const { client, fake, ws } = await joinedClient({}, { you: { id: 'ag', role: 'agent' } });
  const events = [];
  client.on('event', (e, meta) => events.push([e.type, meta.offset]));
  ws.receive({ type: 'event', offset: 7, event: { type: 4, data: {}, timestamp: 1 } });
  ws.receive({ type: 'caught_up', offset: 7 });
  ws.receive({ type: 'event', offset: 9, event: { type: 3, data: { source: 1 }, timestamp: 2 } });
  assert.deepEqual(events, [[4, 7], [3, 9]]);
  assert.equal(client.offset, 9);

  const delays = [];
  client.on('reconnecting', (r) => delays.push(r.delay));
  // Three failures in a row: 5, 10, 20 ms (random 0.5 => factor 1), then joined resets the count.
  for (let i = 0; i < 3; i++) {
    const n = fake.sockets.length;
    fake.last().serverClose(1006);
    await waitFor(() => fake.sockets.length === n + 1);
  }
  assert.deepEqual(delays, [5, 10, 20]);
  const s = fake.last();
  s.open();
  assert.deepEqual(s.frames()[0], { type: 'join', resume: { epoch: 'E1', offset: 9 } });
  s.receive(JOINED({ mode: 'resume', head: 9 }));
  await reconnect(fake, 4000);
  assert.equal(delays.at(-1), 5, 'backoff restarts after a join');
  client.close();
});

test('jitter spreads the delay over ±50 % and the delay is capped', async () => {
  const fake = fakeWebSocket();
  let r = 0;
  const client = new RelayClient({
    WebSocket: fake.FakeWebSocket,
    reconnect: { initialDelay: 4, maxDelay: 16, jitter: 0.5 },
    ping: false,
    random: () => r,
  });
  const delays = [];
  client.on('reconnecting', (x) => delays.push(x.delay));
  client.connect('ws://relay.test/ws', 'T');
  for (const [i, rv] of [0, 0.999999, 0, 0, 0].entries()) {
    r = rv;
    await waitFor(() => fake.sockets.length === i + 1);
    fake.last().serverClose(1006);
  }
  await waitFor(() => delays.length === 5);
  assert.equal(delays[0], 2); // 4 * 0.5
  assert.ok(Math.abs(delays[1] - 12) < 0.001); // 8 * ~1.5
  assert.deepEqual(delays.slice(2), [8, 8, 8]); // capped at 16, * 0.5
  client.close();
});

test('a resync resets the offset bookkeeping and stores the new epoch', async () => {
  const { client, fake, ws } = await joinedClient();
  const resyncs = [];
  client.on('resync', (r) => resyncs.push(r));
  ws.receive({ type: 'caught_up', offset: 5 });
  ws.receive({ type: 'resync', epoch: 'E2', reason: 'lagged' });
  assert.equal(client.epoch, 'E2');
  ws.receive({ type: 'caught_up', offset: 3 });
  const s = await reconnect(fake);
  assert.deepEqual(s.frames()[0], { type: 'join', resume: { epoch: 'E2', offset: 3 } });
  s.receive(JOINED({ epoch: 'E3', mode: 'resync', reason: 'epoch_changed' }));
  assert.deepEqual(
    resyncs.map((r) => [r.epoch, r.reason, r.onJoin]),
    [
      ['E2', 'lagged', false],
      ['E3', 'epoch_changed', true],
    ],
  );
  assert.equal(client.offset, null);
  client.close();
});

test('chat: idempotent ids, resend after reconnect, promise resolved on ack', async () => {
  const { client, fake, ws } = await joinedClient();
  const p1 = client.sendChat('hello');
  const [c1] = ws.framesOf('chat');
  assert.equal(c1.text, 'hello');
  assert.match(c1.id, /^x-c\d+$/);

  // Dropped before the ack: resent with the same id after the next joined, not before.
  const s2 = await reconnect(fake);
  const p2 = client.sendChat('queued while joining');
  assert.equal(s2.framesOf('chat').length, 0);
  s2.receive(JOINED({ mode: 'resume' }));
  const resent = s2.framesOf('chat');
  assert.deepEqual(
    resent.map((c) => c.text),
    ['hello', 'queued while joining'],
  );
  assert.equal(resent[0].id, c1.id);
  s2.receive({ type: 'ack', id: c1.id, offset: 11, duplicate: true });
  assert.deepEqual(await p1, { id: c1.id, offset: 11, duplicate: true });
  s2.receive({ type: 'ack', id: resent[1].id, offset: 12 });
  assert.deepEqual(await p2, { id: resent[1].id, offset: 12, duplicate: false });
  assert.equal(client.pendingChats, 0);

  // Acked chat is not resent on the next reconnect.
  const s3 = await reconnect(fake);
  s3.receive(JOINED({ mode: 'resume' }));
  assert.equal(s3.framesOf('chat').length, 0);
  client.close();
});

test('chat: retryable errors resend with the same id, others reject', async () => {
  const { client, ws } = await joinedClient({ retryDelay: 5 });
  const p = client.sendChat('a');
  const [c] = ws.framesOf('chat');
  ws.receive({ type: 'error', id: c.id, code: 'rate_limited', message: 'slow down' });
  await waitFor(() => ws.framesOf('chat').length === 2);
  assert.equal(ws.framesOf('chat')[1].id, c.id);
  ws.receive({ type: 'ack', id: c.id, offset: 3 });
  assert.equal((await p).offset, 3);

  const bad = client.sendChat('b');
  const id = ws.framesOf('chat')[2].id;
  ws.receive({ type: 'error', id, code: 'invalid_frame', message: 'nope' });
  await assert.rejects(bad, (e) => e instanceof RelayError && e.code === 'invalid_frame');
  client.close();
});

test('incoming chat is de-duplicated by (from.id, id) and updates the offset', async () => {
  const { client, ws } = await joinedClient();
  const got = [];
  client.on('chat', (m) => got.push(m));
  const msg = { type: 'chat', id: 'm1', offset: 4, text: 'hi', from: { id: 'ag', role: 'agent' }, ts: 1 };
  ws.receive(msg);
  ws.receive({ ...msg, offset: 6 });
  ws.receive({ ...msg, from: { id: 'cust-1', role: 'customer' }, offset: 8 });
  assert.equal(got.length, 2);
  assert.equal(got[0].own, false);
  assert.equal(got[1].own, true);
  assert.equal(client.offset, 8);
  client.close();
});

test('publish: ids, queued while disconnected, resent after resume until acked', async () => {
  const fake = fakeWebSocket();
  const client = new RelayClient({ WebSocket: fake.FakeWebSocket, reconnect: FAST, ping: false, idPrefix: 'x' });
  client.connect('ws://relay.test/ws', 'T');
  const p1 = client.publish({ type: 4, data: { href: 'https://a/' }, timestamp: 1 });
  await waitFor(() => fake.sockets.length === 1);
  fake.last().open();
  assert.equal(fake.last().framesOf('event').length, 0, 'nothing before joined');
  fake.last().receive(JOINED());
  const [e1] = fake.last().framesOf('event');
  assert.deepEqual(e1.event, { type: 4, data: { href: 'https://a/' }, timestamp: 1 });
  assert.match(e1.id, /^x-e\d+$/);
  // JSON text of the event is embedded as serialized once
  assert.equal(fake.last().sent[1], `{"type":"event","id":"${e1.id}","event":{"type":4,"data":{"href":"https://a/"},"timestamp":1}}`);

  const s2 = await reconnect(fake);
  const p2 = client.publish({ type: 3, data: { source: 2 }, timestamp: 2 });
  s2.receive(JOINED({ mode: 'resume' }));
  await waitFor(() => s2.framesOf('event').length === 2);
  assert.deepEqual(
    s2.framesOf('event').map((f) => f.id),
    [e1.id, 'x-e2'],
  );
  s2.receive({ type: 'ack', id: e1.id, offset: 1, duplicate: true });
  s2.receive({ type: 'ack', id: 'x-e2', offset: 2 });
  assert.equal((await p1).duplicate, true);
  assert.equal((await p2).offset, 2);
  assert.equal(client.pendingEvents, 0);
  client.close();
});

// The 162-byte example of docs/protocol.md §6 `chunk` (client).
const DOC_EVENT =
  '{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":3,"textContent":"Grüße","id":2}],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":1718000000500}';

test('upload: the protocol document example slices and digest', async () => {
  const { client, ws } = await joinedClient({}, { limits: { max_frame_bytes: 1024, max_upload_bytes: 4096, chunk_bytes: 64 } });
  const p = client.publish(JSON.parse(DOC_EVENT), { id: 'snap-0007' });
  await waitFor(() => ws.framesOf('chunk').length === 3);
  const chunks = ws.framesOf('chunk');
  const digest = 'sha256:cfc6f89063a836da4ff69a1e9f36fe7f49c6018188f2a2aff867f549fa44b98d';
  assert.deepEqual(
    chunks.map((c) => [c.id, c.index, c.count, c.size, c.digest]),
    [0, 1, 2].map((i) => ['snap-0007', i, 3, 162, digest]),
  );
  assert.equal(chunks[0].data, '{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":3,"text');
  assert.equal(chunks[1].data, 'Content":"Grüße","id":2}],"id":1},"initialOffset":{"left":0,"t');
  assert.equal(chunks[2].data, 'op":0}},"timestamp":1718000000500}');
  ws.receive({ type: 'ack', id: 'snap-0007', offset: 1312 });
  assert.equal((await p).offset, 1312);
  client.close();
});

test('upload: slices on character boundaries, digest, order, resume after reconnect', async () => {
  const limits = { max_frame_bytes: 1024, max_upload_bytes: 1 << 20, chunk_bytes: 50 };
  const { client, fake, ws } = await joinedClient({}, { limits });
  // Emoji (surrogate pairs in UTF-16, 4 bytes in UTF-8), CJK, escapes and a lone surrogate.
  const text = '😀 商品 é "q" \\ \n '.repeat(20) + '\ud800';
  const big = { type: 2, data: { node: { type: 0, text }, id: 1 }, timestamp: 5 };
  const json = JSON.stringify(big);
  const bytes = Buffer.from(json, 'utf8');
  const pBig = client.publish(big);
  const pSmall = client.publish({ type: 3, data: { source: 2 }, timestamp: 6 });
  await waitFor(() => ws.framesOf('event').length === 1);

  // order: every slice of the big event before the small event
  const types = ws.frames().slice(1).map((f) => f.type);
  assert.equal(types.lastIndexOf('chunk') < types.indexOf('event'), true);
  const chunks = ws.framesOf('chunk');
  const count = chunks[0].count;
  assert.ok(count > 3);
  const digest = 'sha256:' + createHash('sha256').update(bytes).digest('hex');
  for (const [i, c] of chunks.entries()) {
    assert.equal(c.index, i);
    assert.equal(c.count, count);
    assert.equal(c.size, bytes.length);
    assert.equal(c.digest, digest);
    const sliceBytes = Buffer.from(c.data, 'utf8');
    assert.ok(sliceBytes.length <= 50 && sliceBytes.length > 0);
    // valid UTF-8 / well-formed UTF-16: the string survives a UTF-8 round trip
    assert.equal(sliceBytes.toString('utf8'), c.data);
  }
  assert.equal(chunks.map((c) => c.data).join(''), json);

  // Two slices staged, then the connection drops: only the others are resent.
  ws.receive({ type: 'chunk_ack', id: chunks[0].id, index: 0 });
  ws.receive({ type: 'chunk_ack', id: chunks[0].id, index: 2 });
  const s2 = await reconnect(fake);
  s2.receive(JOINED({ mode: 'resume', limits }));
  await waitFor(() => s2.framesOf('event').length === 1);
  const again = s2.framesOf('chunk');
  assert.deepEqual(
    again.map((c) => c.index),
    [...Array(count).keys()].filter((i) => i !== 0 && i !== 2),
  );
  assert.equal(again[0].digest, digest);

  // Every slice staged, but no ack: the whole upload again.
  for (let i = 0; i < count; i++) s2.receive({ type: 'chunk_ack', id: chunks[0].id, index: i });
  const s3 = await reconnect(fake);
  s3.receive(JOINED({ mode: 'resume', limits }));
  await waitFor(() => s3.framesOf('chunk').length === count);
  s3.receive({ type: 'ack', id: chunks[0].id, offset: 40 });
  s3.receive({ type: 'ack', id: chunks[0].id, offset: 40, duplicate: true }); // ignored
  s3.receive({ type: 'ack', id: s3.framesOf('event')[0].id, offset: 41 });
  assert.equal((await pBig).offset, 40);
  assert.equal((await pSmall).offset, 41);

  // Acked: nothing is resent any more.
  const s4 = await reconnect(fake);
  s4.receive(JOINED({ mode: 'resume', limits }));
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(s4.frames().length, 1);
  client.close();
});

test('upload: upload_invalid restarts from slice 0, too_large rejects without sending', async () => {
  const limits = { max_frame_bytes: 1024, max_upload_bytes: 300, chunk_bytes: 64 };
  const { client, ws } = await joinedClient({}, { limits });
  const p = client.publish(JSON.parse(DOC_EVENT), { id: 'u1' });
  await waitFor(() => ws.framesOf('chunk').length === 3);
  ws.receive({ type: 'chunk_ack', id: 'u1', index: 0 });
  ws.receive({ type: 'error', id: 'u1', code: 'upload_invalid', message: 'digest mismatch' });
  await waitFor(() => ws.framesOf('chunk').length === 6);
  assert.deepEqual(ws.framesOf('chunk').slice(3).map((c) => c.index), [0, 1, 2]);
  ws.receive({ type: 'ack', id: 'u1', offset: 2 });
  await p;

  const huge = client.publish({ type: 2, data: { x: 'y'.repeat(400) } });
  await assert.rejects(huge, (e) => e.code === 'too_large');
  assert.equal(ws.framesOf('chunk').length, 6);
  client.close();
});

test('server chunk frames are reassembled into one event (JSON)', async () => {
  const { client, fake, ws } = await joinedClient();
  const events = [];
  client.on('event', (e, meta) => events.push([e, meta]));
  const parts = [
    '{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":3,"text',
    'Content":"Grüße","id":2}],"id":1},"initialOffset":{"left":0,"t',
    'op":0}},"timestamp":1718000000500}',
  ];
  ws.receive({ type: 'caught_up', offset: 1300 });
  for (const [index, data] of parts.entries()) {
    ws.receive({ type: 'chunk', offset: 1312, index, count: 3, size: 162, data });
    if (index < 2) assert.equal(client.offset, 1300, 'offset only after the last slice');
  }
  assert.equal(events.length, 1);
  assert.deepEqual(events[0][0], JSON.parse(DOC_EVENT));
  assert.equal(events[0][1].offset, 1312);
  assert.equal(client.offset, 1312);

  // A partial event is discarded when the connection drops; resume from the last whole entry.
  fake.last().receive({ type: 'chunk', offset: 1320, index: 0, count: 2, size: 10, data: '{"type":' });
  const s2 = await reconnect(fake);
  assert.deepEqual(s2.frames()[0], { type: 'join', resume: { epoch: 'E1', offset: 1312 } });
  s2.receive(JOINED({ mode: 'resume' }));
  s2.receive({ type: 'chunk', offset: 1320, index: 1, count: 2, size: 10, data: '5}' }); // orphan
  assert.equal(events.length, 1);
  s2.receive({ type: 'chunk', offset: 1320, index: 0, count: 2, size: 10, data: '{"type":' });
  s2.receive({ type: 'chunk', offset: 1320, index: 1, count: 2, size: 10, data: '5}' });
  assert.deepEqual(events[1][0], { type: 5 });
  client.close();
});

test('server chunk frames are reassembled from bin slices cut inside a character (MessagePack)', async () => {
  const { client, ws } = await joinedClient({ codec: 'msgpack' });
  assert.deepEqual(ws.protocols, ['assist-relay.v1.msgpack', 'assist-relay.token.TKN']);
  const events = [];
  client.on('event', (e, meta) => events.push([e, meta.offset]));
  const bytes = Buffer.from(DOC_EVENT, 'utf8');
  const cut = DOC_EVENT.indexOf('ü') + 1; // inside the 2-byte ü (UTF-16 index = byte index here)
  const slices = [bytes.subarray(0, cut), bytes.subarray(cut, 100), bytes.subarray(100)];
  for (const [index, data] of slices.entries()) {
    ws.receive({ type: 'chunk', offset: 9, index, count: 3, size: bytes.length, data: new Uint8Array(data) });
  }
  assert.deepEqual(events, [[JSON.parse(DOC_EVENT), 9]]);
  client.close();
});

test('close codes: reconnect below 4500, stop at 4500-4999 with a closed event', async () => {
  assert.equal(shouldReconnect(1000), true);
  for (const code of [1001, 1006, 1009, 1011, 4000, 4001, 4002, 4003, 4004, 4499]) {
    assert.equal(shouldReconnect(code), true, String(code));
  }
  for (const code of [4500, 4501, 4502, 4503, 4999]) assert.equal(shouldReconnect(code), false, String(code));
  assert.equal(shouldReconnect(4500, true), true);

  for (const code of [4003, 4000, 1001, 1006]) {
    const { client, fake } = await joinedClient();
    await reconnect(fake, code);
    assert.equal(fake.sockets.length, 2, `reconnected after ${code}`);
    client.close();
  }

  for (const code of [4500, 4501, 4502, 4503, 4777]) {
    const { client, fake, ws } = await joinedClient();
    const closed = [];
    client.on('closed', (c) => closed.push(c));
    const reconnecting = [];
    client.on('reconnecting', (r) => reconnecting.push(r));
    const pending = client.sendChat('unacked');
    ws.serverClose(code, 'why');
    await assert.rejects(pending, (e) => e.code === 'closed' && e.closeCode === code);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(fake.sockets.length, 1, `no reconnect after ${code}`);
    assert.deepEqual(closed, [{ code, reason: 'why', byClient: false }]);
    assert.equal(reconnecting.length, 0);
    assert.equal(client.state, 'closed');
  }
});

test('4500 token_expired reconnects with a fresh token when a token provider is given', async () => {
  let n = 0;
  const { client, fake, ws } = await joinedClient({ token: async () => `tok${++n}` });
  assert.equal(ws.protocols[1], 'assist-relay.token.tok1');
  const s2 = await reconnect(fake, 4500);
  assert.equal(s2.protocols[1], 'assist-relay.token.tok2');
  client.close();
});

test('end() resolves on close 4502 and the client stops', async () => {
  const { client, fake, ws } = await joinedClient({}, { you: { id: 'ag', role: 'agent' } });
  const done = client.end();
  assert.deepEqual(ws.frames().at(-1), { type: 'end' });
  ws.serverClose(4502, 'room_closed');
  await done;
  assert.equal(client.state, 'closed');
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(fake.sockets.length, 1);
});

test('presence follows joined, member_joined and member_left', async () => {
  const { client, ws } = await joinedClient();
  ws.receive({ type: 'member_joined', member: { id: 'ag', role: 'agent' } });
  assert.deepEqual([...client.members.keys()], ['cust-1', 'ag']);
  ws.receive({ type: 'member_left', member: { id: 'ag', role: 'agent' } });
  assert.deepEqual([...client.members.keys()], ['cust-1']);
  const got = [];
  client.on('snapshotRequest', (r) => got.push(r.reason));
  ws.receive({ type: 'snapshot_request', reason: 'tail_too_large' });
  ws.receive({ type: 'something_new', x: 1 }); // ignored
  assert.deepEqual(got, ['tail_too_large']);
  client.close();
});

test('app-level ping: no answer closes and reconnects, any frame counts as an answer', async () => {
  const { client, fake, ws } = await joinedClient({ ping: { interval: 10, timeout: 25 } });
  await waitFor(() => ws.framesOf('ping').length >= 1);
  const [ping] = ws.framesOf('ping');
  assert.match(ping.id, /^p-\d+$/);
  ws.receive({ type: 'pong', id: ping.id });
  await waitFor(() => ws.framesOf('ping').length >= 2);
  // no pong now: the client gives up on this socket and reconnects
  await waitFor(() => fake.sockets.length === 2, 2000, 'reconnect after keep-alive timeout');
  assert.ok(ws.closedByClient);
  client.close();
});

test('reportNativePage sends native_page with an id in publish order', async () => {
  const { client, ws } = await joinedClient();
  const p = client.reportNativePage({ pageId: 'checkout', title: 'Payment', fields: { step: '2' } });
  const [np] = ws.framesOf('native_page');
  assert.deepEqual(np.page, { page_id: 'checkout', title: 'Payment', fields: { step: '2' } });
  ws.receive({ type: 'ack', id: np.id, offset: 3 });
  assert.equal((await p).offset, 3);
  client.close();
});
