// Guidance and call signaling against the real relay binary (both codecs): the customer's client
// gets the agent's guidance, refusals come back as errors, signals route between the roles, and
// `joined` carries the node's ICE servers with minted TURN credentials.
//
// The binary: $RELAY_BIN, else `cargo build --bin relay`. Skipped when neither is possible.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';

import { RelayClient, GuideSender } from '../src/index.js';
import { waitFor } from './fake-ws.js';

const SECRET = 'sdk-guide-secret-0123456789abcdef';
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

function findRelay() {
  if (process.env.RELAY_BIN) {
    // Named but missing is a mistake in the test command, not a reason to skip.
    if (!existsSync(process.env.RELAY_BIN)) throw new Error(`RELAY_BIN=${process.env.RELAY_BIN} does not exist`);
    return process.env.RELAY_BIN;
  }
  const build = spawnSync('cargo', ['build', '--bin', 'relay'], { cwd: REPO, stdio: ['ignore', 'ignore', 'pipe'] });
  if (build.error || build.status !== 0) return null;
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
  archive = mkdtempSync(join(tmpdir(), 'relay-guide-'));
  const env = { ...process.env, RELAY_JWT_SECRET: SECRET, RELAY_LOG: 'info' };
  delete env.RELAY_REDIS_URL;
  server = spawn(
    RELAY,
    [
      'serve',
      '--listen', '127.0.0.1:0',
      '--admin-listen', '127.0.0.1:0',
      '--recordings', 'false',
      '--archive-dir', archive,
      '--stun', 'stun:stun.test:3478',
      '--turn', 'turn:turn.test:3478?transport=udp',
      '--turn-secret', 'turn-secret',
    ],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
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

function token(room, role, sub, caps = []) {
  const args = ['token', '--secret', SECRET, '--room', room, '--role', role, '--sub', sub];
  for (const c of caps) args.push('--cap', c);
  return execFileSync(RELAY, args).toString().trim();
}

async function joinRoom(room, role, sub, codec, caps) {
  const client = new RelayClient({ WebSocket, codec, ping: false, reconnect: false, room });
  const joined = await client.connect(url, token(room, role, sub, caps));
  return { client, joined };
}

test('agent guidance reaches the customer; refusals come back as errors', { skip }, async () => {
  for (const [custCodec, agentCodec] of [['json', 'msgpack'], ['msgpack', 'json']]) {
    const room = `guide-${custCodec}`;
    const { client: customer, joined } = await joinRoom(room, 'customer', 'cust', custCodec);
    assert.equal(joined.iceServers.length, 2);
    assert.deepEqual(joined.iceServers[0], { urls: ['stun:stun.test:3478'] });
    assert.match(joined.iceServers[1].username, /^\d+:cust$/);
    assert.ok(joined.iceServers[1].credential.length > 20);
    const { client: agent } = await joinRoom(room, 'agent', 'alice', agentCodec);
    const guides = [];
    customer.on('guide', (g, meta) => guides.push([g, meta.from.id]));
    const sender = new GuideSender(agent);
    sender.pointer(412.5, 230.25, 57);
    sender.highlight(57);
    sender.annotate(57, 'Export is here 🙂');
    await waitFor(() => guides.length === 3, 5000, 'guidance');
    assert.deepEqual(guides, [
      [{ kind: 'pointer', x: 412.5, y: 230.25, node: 57 }, 'alice'],
      [{ kind: 'highlight', node: 57 }, 'alice'],
      [{ kind: 'annotate', node: 57, text: 'Export is here 🙂' }, 'alice'],
    ]);

    const errors = [];
    customer.on('error', (e) => errors.push(e));
    customer.sendGuide({ kind: 'clear' }, { id: 'g1' });
    await waitFor(() => errors.length === 1, 5000, 'forbidden');
    assert.equal(errors[0].code, 'forbidden');
    assert.equal(errors[0].id, 'g1');

    const { client: caller } = await joinRoom(room, 'agent', 'bob', agentCodec, ['call']);
    const callerErrors = [];
    caller.on('error', (e) => callerErrors.push(e));
    caller.sendGuide({ kind: 'highlight', node: 3 }, { id: 'g2' });
    await waitFor(() => callerErrors.length === 1, 5000, 'forbidden without the guide capability');
    assert.equal(callerErrors[0].code, 'forbidden');

    // signals: agent -> customer by id, customer -> every agent
    const custSignals = [];
    customer.on('signal', (s, meta) => custSignals.push([s, meta.from.id]));
    const agentSignals = [];
    agent.on('signal', (s, meta) => agentSignals.push([s, meta.from.id]));
    caller.sendSignal({ kind: 'offer', call: 'k1', sdp: 'v=0\r\n' }, 'cust');
    await waitFor(() => custSignals.length === 1, 5000, 'offer');
    assert.deepEqual(custSignals[0], [{ kind: 'offer', call: 'k1', sdp: 'v=0\r\n' }, 'bob']);
    customer.sendSignal({ kind: 'hangup', call: 'k1', reason: 'declined' });
    await waitFor(() => agentSignals.length === 1, 5000, 'hangup');
    assert.deepEqual(agentSignals[0], [{ kind: 'hangup', call: 'k1', reason: 'declined' }, 'cust']);

    for (const c of [customer, agent, caller]) c.close();
  }
});
