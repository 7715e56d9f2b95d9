import { test } from 'node:test';
import assert from 'node:assert/strict';

import { RelayClient, startRecording, LiveView } from '../src/index.js';
import { fakeWebSocket, waitFor, JOINED } from './fake-ws.js';

async function joined(joinedExtra = {}) {
  const fake = fakeWebSocket();
  const client = new RelayClient({ WebSocket: fake.FakeWebSocket, ping: false, reconnect: { initialDelay: 5 } });
  const p = client.connect('ws://relay.test/ws', 'T');
  await waitFor(() => fake.sockets.length === 1);
  fake.last().open();
  fake.last().receive(JOINED(joinedExtra));
  await p;
  return { client, fake, ws: fake.last() };
}

function fakeRecord() {
  const calls = { options: null, full: [], stopped: false };
  const record = (options) => {
    calls.options = options;
    return () => {
      calls.stopped = true;
    };
  };
  record.takeFullSnapshot = (isCheckout) => {
    calls.full.push(isCheckout);
    calls.options.emit({ type: 4, data: { href: 'x' }, timestamp: 9 });
  };
  return { record, calls };
}

test('startRecording publishes rrweb events and answers snapshot_request', async () => {
  const { client, ws } = await joined();
  const { record, calls } = fakeRecord();
  const rec = startRecording(client, { record, maskAllInputs: true });
  assert.equal(calls.options.checkoutEveryNms, 5 * 60 * 1000);
  assert.equal(calls.options.maskAllInputs, true);
  calls.options.emit({ type: 3, data: { source: 2 }, timestamp: 1 });
  assert.deepEqual(ws.framesOf('event').map((f) => f.event.type), [3]);
  ws.receive({ type: 'snapshot_request', reason: 'native_page_left' });
  assert.deepEqual(calls.full, [true]);
  assert.equal(ws.framesOf('event').length, 2);
  ws.serverClose(4502, 'room_closed');
  assert.equal(calls.stopped, true, 'recording stops when the session ends');
  rec.stop();
});

test('LiveView feeds a live Replayer and starts a new one on resync', async () => {
  const { client, ws } = await joined({ you: { id: 'ag', role: 'agent' } });
  const made = [];
  class FakeReplayer {
    constructor(events, config) {
      this.config = config;
      this.events = [];
      this.live = false;
      this.destroyed = false;
      made.push(this);
    }
    startLive() {
      this.live = true;
    }
    addEvent(e) {
      this.events.push(e);
    }
    destroy() {
      this.destroyed = true;
    }
  }
  const root = { innerHTML: 'old' };
  const view = new LiveView(client, { root, Replayer: FakeReplayer });
  ws.receive({ type: 'event', offset: 1, event: { type: 4, data: {}, timestamp: 1 } });
  ws.receive({ type: 'chunk', offset: 2, index: 0, count: 2, size: 20, data: '{"type":2,' });
  ws.receive({ type: 'chunk', offset: 2, index: 1, count: 2, size: 20, data: '"data":{}}' });
  assert.equal(made.length, 1);
  assert.equal(made[0].live, true);
  assert.equal(made[0].config.liveMode, true);
  assert.equal(made[0].config.root, root);
  assert.deepEqual(made[0].events.map((e) => e.type), [4, 2]);
  ws.receive({ type: 'resync', epoch: 'E2', reason: 'lagged' });
  assert.equal(made[0].destroyed, true);
  assert.equal(root.innerHTML, '');
  ws.receive({ type: 'event', offset: 5, event: { type: 4, data: {}, timestamp: 3 } });
  assert.equal(made.length, 2);
  assert.deepEqual(made[1].events.map((e) => e.type), [4]);
  view.destroy();
  client.close();
});
