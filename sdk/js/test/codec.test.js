import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode } from '@msgpack/msgpack';

import { RawEvent, jsonCodec, msgpackCodec, sliceUtf8, sha256Digest } from '../src/codec.js';
import { RelayClient } from '../src/index.js';
import { fakeWebSocket, waitFor, JOINED } from './fake-ws.js';

const hex = (s) => Uint8Array.from(s.trim().split(/\s+/).map((b) => parseInt(b, 16)));

test('msgpack: ping encodes to the bytes of the protocol document', () => {
  const bytes = msgpackCodec.encode({ type: 'ping', id: 'p-17' });
  assert.deepEqual(bytes, hex('82 a4 74 79 70 65 a4 70 69 6e 67 a2 69 64 a4 70 2d 31 37'));
});

test('msgpack: the document server event decodes with its event as an object', () => {
  const frame = msgpackCodec.decode(
    hex(`83 a4 74 79 70 65 a5 65 76 65 6e 74 a6 6f 66 66 73 65 74 cd 05 0a a5 65 76 65 6e 74 c4 2f 7b 22
         74 79 70 65 22 3a 33 2c 22 64 61 74 61 22 3a 7b 22 73 6f 75 72 63 65 22 3a 32 2c 22 74 79 70 65
         22 3a 32 2c 22 69 64 22 3a 35 37 7d 7d`).buffer,
  );
  assert.deepEqual(frame, { type: 'event', offset: 1290, event: { type: 3, data: { source: 2, type: 2, id: 57 } } });
});

test('msgpack: round trip of client frames; the event travels as bin of its JSON text', () => {
  const json = '{"type":3,"data":{"source":5,"text":"Grüße 😀"},"timestamp":1}';
  const bytes = msgpackCodec.encode({ type: 'event', id: 'ev-1', event: new RawEvent(json) });
  const raw = decode(bytes);
  assert.ok(raw.event instanceof Uint8Array, 'event is a bin');
  assert.equal(new TextDecoder().decode(raw.event), json);
  assert.deepEqual(msgpackCodec.decode(bytes), { type: 'event', id: 'ev-1', event: JSON.parse(json) });

  const chat = { type: 'chat', id: 'c1', text: 'hi 🙂', offset: 2 ** 40, from: { id: 'a', role: 'agent' } };
  assert.deepEqual(msgpackCodec.decode(msgpackCodec.encode(chat)), chat);
  // nil is absent; a str event is accepted too
  assert.deepEqual(msgpackCodec.decode(encode({ type: 'event', event: '{"type":1}', id: null })), {
    type: 'event',
    event: { type: 1 },
  });
  assert.throws(() => msgpackCodec.decode('{"type":"pong"}'), /text frame/);
  assert.throws(() => msgpackCodec.decode(encode([1, 2])), /not a map/);
});

test('json: events are embedded as their JSON text, frames round trip', () => {
  const json = '{"type":3, "data":{"x":1e3}}';
  const text = jsonCodec.encode({ type: 'event', id: 'e', event: new RawEvent(json) });
  assert.equal(text, '{"type":"event","id":"e","event":{"type":3, "data":{"x":1e3}}}');
  assert.deepEqual(jsonCodec.decode(text).event, { type: 3, data: { x: 1000 } });
  assert.throws(() => jsonCodec.decode(new ArrayBuffer(2)), /binary frame/);
});

test('sliceUtf8 never cuts a character; sha256Digest matches the document', async () => {
  const bytes = new TextEncoder().encode('a😀b商c');
  for (let n = 4; n <= bytes.length; n++) {
    const slices = sliceUtf8(bytes, n);
    for (const s of slices) {
      assert.ok(s.length <= n && s.length > 0);
      new TextDecoder('utf-8', { fatal: true }).decode(s); // throws on a cut character
    }
    assert.deepEqual(Buffer.concat(slices), Buffer.from(bytes));
  }
  const doc =
    '{"type":2,"data":{"node":{"type":0,"childNodes":[{"type":3,"textContent":"Grüße","id":2}],"id":1},"initialOffset":{"left":0,"top":0}},"timestamp":1718000000500}';
  assert.equal(
    await sha256Digest(new TextEncoder().encode(doc)),
    'sha256:cfc6f89063a836da4ff69a1e9f36fe7f49c6018188f2a2aff867f549fa44b98d',
  );
});

test('a msgpack client sends binary frames, bin events and bin upload slices', async () => {
  const fake = fakeWebSocket();
  const client = new RelayClient({ WebSocket: fake.FakeWebSocket, codec: 'msgpack', ping: false });
  const joined = client.connect('ws://relay.test/ws', 'T');
  await waitFor(() => fake.sockets.length === 1);
  const ws = fake.last();
  ws.open();
  assert.ok(ws.sent[0] instanceof Uint8Array);
  ws.receive(JOINED({ limits: { max_frame_bytes: 1024, max_upload_bytes: 4096, chunk_bytes: 24 } }));
  await joined;
  client.publish({ type: 4, data: {} });
  client.publish({ type: 2, data: { t: 'Grüße 😀 Grüße 😀' } });
  await waitFor(() => ws.framesOf('chunk').length > 0);
  const [ev] = ws.framesOf('event');
  assert.ok(ev.event instanceof Uint8Array);
  assert.equal(new TextDecoder().decode(ev.event), '{"type":4,"data":{}}');
  const chunks = ws.framesOf('chunk');
  assert.ok(chunks.every((c) => c.data instanceof Uint8Array && c.data.length <= 24));
  assert.equal(
    new TextDecoder().decode(Buffer.concat(chunks.map((c) => c.data))),
    '{"type":2,"data":{"t":"Grüße 😀 Grüße 😀"}}',
  );
  client.close();
});
