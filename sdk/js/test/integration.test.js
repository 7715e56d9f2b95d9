// End-to-end against the real relay binary: a customer's events (small and chunk-uploaded) and
// chat reach an agent, in both codecs, and `end` closes everyone with 4502.
//
// The binary: $RELAY_BIN, else `cargo build --bin relay` in the repository root (then
// target/debug/relay, or $CARGO_TARGET_DIR/debug/relay). Skipped when neither is possible.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

import { RelayClient } from '../src/index.js';
import { waitFor } from './fake-ws.js';

const SECRET = 'sdk-integration-secret-0123456789abcdef';
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

function findRelay() {
  if (process.env.RELAY_BIN) {
    // Named but missing is a mistake in the test command, not a reason to skip.
    if (!existsSync(process.env.RELAY_BIN)) throw new Error(`RELAY_BIN=${process.env.RELAY_BIN} does not exist`);
    return process.env.RELAY_BIN;
  }
  const build = spawnSync('cargo', ['build', '--bin', 'relay'], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  if (build.error || build.status !== 0) {
    console.error('cargo build --bin relay failed:', build.error?.message ?? build.stderr?.toString().slice(-2000));
    return null;
  }
  const bin = join(process.env.CARGO_TARGET_DIR ?? join(REPO, 'target'), 'debug', 'relay');
  return existsSync(bin) ? bin : null;
}

const RELAY = findRelay();
const skip = RELAY ? false : 'relay binary not available (set RELAY_BIN or install cargo)';

let server = null;
let url = null;
let archive = null;

before(async () => {
  if (!RELAY) return;
  archive = mkdtempSync(join(tmpdir(), 'relay-sdk-'));
  server = spawn(
    RELAY,
    [
      'serve',
      '--listen', '127.0.0.1:0',
      '--admin-listen', '127.0.0.1:0',
      '--max-frame-bytes', '65536',
      '--recordings', 'false',
      '--archive-dir', archive,
    ],
    { env: relayEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const onData = (d) => {
    out += d.toString();
  };
  server.stdout.on('data', onData);
  server.stderr.on('data', onData);
  const addr = await waitFor(() => out.match(/ws:\/\/([0-9.]+:\d+)\/ws/)?.[1], 20000, `relay to listen; output:\n${out}`);
  url = `ws://${addr}/ws`;
});

after(() => {
  server?.kill('SIGTERM');
  if (archive) rmSync(archive, { recursive: true, force: true });
});

function relayEnv() {
  const env = { ...process.env, RELAY_JWT_SECRET: SECRET, RELAY_LOG: 'info' };
  delete env.RELAY_REDIS_URL; // embedded mode
  return env;
}

function token(room, role, sub) {
  return execFileSync(RELAY, ['token', '--secret', SECRET, '--room', room, '--role', role, '--sub', sub])
    .toString()
    .trim();
}

function client(codec) {
  return new RelayClient({ WebSocket, codec, reconnect: { initialDelay: 50, maxDelay: 500 } });
}

/** A FullSnapshot of about `n` bytes with multi-byte text. */
function bigSnapshot(n) {
  const childNodes = [];
  for (let id = 10; JSON.stringify(childNodes).length < n; id += 1) {
    childNodes.push({ type: 3, textContent: `商品 ${id} – ¥${id}.00 é 😀 "q"`, id });
  }
  return {
    type: 2,
    data: {
      node: { type: 0, id: 1, childNodes: [{ type: 2, tagName: 'html', attributes: {}, childNodes, id: 3 }] },
      initialOffset: { left: 0, top: 0 },
    },
    timestamp: 1700000000001,
  };
}

for (const codec of ['json', 'msgpack']) {
  test(`customer events and chat reach an agent through the relay (${codec})`, { skip, timeout: 30000 }, async () => {
    const room = `sdk-it-${codec}-${Date.now()}`;
    const agent = client(codec);
    const customer = client(codec);
    const events = [];
    const agentChat = [];
    const customerChat = [];
    agent.on('event', (e, meta) => events.push({ e, offset: meta.offset, chunked: !!meta.chunked }));
    agent.on('chat', (m) => agentChat.push(m));
    customer.on('chat', (m) => customerChat.push(m));

    const joinedA = await agent.connect(url, token(room, 'agent', 'agent-1'));
    assert.equal(joinedA.mode, 'fresh');
    assert.equal(joinedA.limits.max_frame_bytes, 65536);
    const memberJoined = new Promise((r) => agent.once('member_joined', r));
    const joinedC = await customer.connect(url, () => token(room, 'customer', 'cust-1'));
    assert.deepEqual(joinedC.you, { id: 'cust-1', role: 'customer' });
    assert.deepEqual(await memberJoined, { id: 'cust-1', role: 'customer' });

    const meta = { type: 4, data: { href: 'https://shop.example/', width: 390, height: 844 }, timestamp: 1700000000000 };
    const snap = bigSnapshot(200_000); // > chunk_bytes: uploaded in slices, delivered in chunks
    const click = { type: 3, data: { source: 2, type: 2, id: 12, x: 1, y: 2 }, timestamp: 1700000000002 };
    const acks = await Promise.all([customer.publish(meta), customer.publish(snap), customer.publish(click)]);
    assert.ok(acks[0].offset < acks[1].offset && acks[1].offset < acks[2].offset, 'stored in publish order');

    const chatAck = await customer.sendChat('Hi! Where is the "Export" button? 🙂');
    await waitFor(() => events.length === 3 && agentChat.length === 1, 10000, 'agent to receive');
    assert.deepEqual(events.map((x) => x.e), [meta, snap, click]);
    assert.deepEqual(events.map((x) => x.offset), acks.map((a) => a.offset));
    assert.equal(events[1].chunked, true, 'the large event arrived in chunk frames');
    assert.equal(agentChat[0].text, 'Hi! Where is the "Export" button? 🙂');
    assert.equal(agentChat[0].offset, chatAck.offset);
    assert.deepEqual(agentChat[0].from, { id: 'cust-1', role: 'customer' });

    // The agent answers; the customer receives it.
    await agent.sendChat('Top right.');
    await waitFor(() => customerChat.some((m) => m.text === 'Top right.'), 10000, 'customer chat');

    // A resend of the same chat id (the ack forgotten by hand) is acked as a duplicate.
    const again = await customer.sendChat('dup?', { id: 'fixed-id' });
    customer._chats.clear(); // forget the ack to resend by hand
    const dup = await customer.sendChat('dup?', { id: 'fixed-id' });
    assert.equal(dup.duplicate, true);
    assert.equal(dup.offset, again.offset);

    // End the session: everyone is closed with 4502 and nobody reconnects.
    const customerClosed = new Promise((r) => customer.once('closed', r));
    await agent.end();
    assert.equal((await customerClosed).code, 4502);
    assert.equal(agent.state, 'closed');
  });
}

test('an agent that reconnects resumes where it left off', { skip, timeout: 30000 }, async () => {
  const room = `sdk-it-resume-${Date.now()}`;
  const agent = client('json');
  const customer = client('json');
  const events = [];
  agent.on('event', (e, m) => events.push(m.offset));
  await agent.connect(url, token(room, 'agent', 'agent-1'));
  await customer.connect(url, token(room, 'customer', 'cust-1'));
  await customer.publish({ type: 4, data: { href: 'https://a/', width: 1, height: 1 }, timestamp: 1 });
  await waitFor(() => events.length === 1);

  // Drop the agent's socket (as a network failure would), publish meanwhile.
  const rejoined = new Promise((r) => agent.once('joined', r));
  agent._ws.terminate();
  const ack = await customer.publish({ type: 3, data: { source: 2 }, timestamp: 2 });
  const j = await rejoined;
  assert.equal(j.mode, 'resume');
  await waitFor(() => events.length === 2, 10000, 'missed event after resume');
  assert.equal(events[1], ack.offset);
  await agent.end();
  customer.close();
});
