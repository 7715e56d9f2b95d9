// LiveView (catch-up, live, resync, keyframes, native placeholders, timeline, status) and the
// recording helpers added for hybrid apps, against the fake WebSocket and a fake Replayer.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { RelayClient, startRecording, LiveView, snapshotTitle, describeHref } from '../src/index.js';
import { fakeWebSocket, waitFor, JOINED } from './fake-ws.js';

const AGENT = { you: { id: 'ag', role: 'agent' }, members: [{ id: 'ag', role: 'agent' }] };

async function connectedAgent(joinedExtra = {}) {
  const fake = fakeWebSocket();
  const client = new RelayClient({ WebSocket: fake.FakeWebSocket, ping: false, reconnect: { initialDelay: 5 } });
  const p = client.connect('ws://relay.test/ws', 'T');
  await waitFor(() => fake.sockets.length === 1);
  return { client, fake, ws: fake.last(), joined: () => { fake.last().open(); fake.last().receive(JOINED({ ...AGENT, ...joinedExtra })); return p; } };
}

function fakeReplayerClass() {
  const made = [];
  class FakeReplayer {
    constructor(events, config) {
      this.config = config;
      this.events = [];
      this.baseline = null;
      this.destroyed = false;
      this.handlers = {};
      made.push(this);
    }
    on(name, fn) {
      this.handlers[name] = fn;
    }
    startLive(baseline) {
      this.baseline = baseline;
    }
    addEvent(e) {
      this.events.push(e);
      if (e.type === 4) this.handlers.resize?.({ width: e.data.width, height: e.data.height });
    }
    destroy() {
      this.destroyed = true;
    }
  }
  return { FakeReplayer, made };
}

const meta = (href, ts = 1000) => ({ type: 4, data: { href, width: 800, height: 600 }, timestamp: ts });
const full = (title, ts = 1001) => ({
  type: 2,
  timestamp: ts,
  data: {
    node: {
      type: 0,
      id: 1,
      childNodes: [
        {
          type: 2,
          tagName: 'html',
          id: 2,
          childNodes: [
            { type: 2, tagName: 'head', id: 3, childNodes: [{ type: 2, tagName: 'title', id: 4, childNodes: [{ type: 3, textContent: title, id: 5 }] }] },
          ],
        },
      ],
    },
  },
});
const inc = (ts = 1002) => ({ type: 3, data: { source: 5, id: 9, text: 'x' }, timestamp: ts });

test('snapshotTitle and describeHref', () => {
  assert.equal(snapshotTitle(full('Cart')), 'Cart');
  assert.equal(snapshotTitle({ type: 2, data: { node: { type: 0, childNodes: [] } } }), undefined);
  assert.equal(snapshotTitle(null), undefined);
  assert.deepEqual(describeHref('native://checkout'), { kind: 'native', url: 'native://checkout', pageId: 'checkout' });
  assert.equal(describeHref('native://checkout').page_id, 'checkout', 'the 0.1 name stays as a deprecated alias');
  assert.deepEqual(describeHref('https://shop.example/cart'), { kind: 'web', url: 'https://shop.example/cart' });
  assert.deepEqual(describeHref(undefined), { kind: 'web', url: '' });
});

test('LiveView: status through a fresh catch-up, live events, no duplicates, new keyframe swap', async () => {
  const { client, ws, joined } = await connectedAgent({ pages: [{ kind: 'web', url: 'https://a/', title: 'A', offset: 1, ts: 5 }] });
  const { FakeReplayer, made } = fakeReplayerClass();
  const root = { innerHTML: 'old', clientWidth: 400, clientHeight: 600 };
  const view = new LiveView(client, { root, Replayer: FakeReplayer });
  const statuses = [];
  view.on('status', (s) => statuses.push(s));
  const pages = [];
  view.on('page', (p) => pages.push(p));
  assert.equal(view.status, 'connecting');
  await joined();
  assert.equal(view.status, 'catching-up');
  assert.equal(view.timeline.length, 1);

  ws.receive({ type: 'event', offset: 1, event: meta('https://a/') });
  ws.receive({ type: 'event', offset: 2, event: full('A') });
  ws.receive({ type: 'event', offset: 3, event: inc() });
  ws.receive({ type: 'event', offset: 3, event: inc() }); // a duplicate offset
  assert.equal(view.status, 'catching-up');
  ws.receive({ type: 'caught_up', offset: 3 });
  assert.equal(view.status, 'live');
  assert.deepEqual(statuses, ['catching-up', 'live']);
  assert.equal(made.length, 1);
  assert.deepEqual(made[0].events.map((e) => e.type), [4, 2, 3]);
  assert.equal(view.stats.duplicates, 1);
  assert.ok(made[0].baseline >= 1001, 'baseline not before the keyframe');
  assert.equal(made[0].config.useVirtualDom, false);
  assert.equal(view.timeline.length, 1, 'the keyframe of joined.pages is not added twice');
  assert.equal(pages[0].title, 'A');

  // a new keyframe: the old replay stays until the FullSnapshot is in, then is swapped
  ws.receive({ type: 'event', offset: 4, event: meta('https://a/next', 2000) });
  assert.equal(made.length, 1);
  assert.equal(made[0].events.length, 3);
  ws.receive({ type: 'chunk', offset: 5, index: 0, count: 1, size: 10, data: JSON.stringify(full('Next', 2001)) });
  assert.equal(made.length, 2);
  assert.equal(made[0].destroyed, true);
  assert.deepEqual(made[1].events.map((e) => e.type), [4, 2]);
  ws.receive({ type: 'event', offset: 6, event: inc(2002) });
  assert.deepEqual(made[1].events.map((e) => e.type), [4, 2, 3]);
  assert.equal(view.page.url, 'https://a/next');
  assert.equal(view.page.title, 'Next');
  assert.deepEqual(view.timeline.map((p) => p.offset), [1, 4]);
  view.destroy();
  client.close();
});

test('LiveView: waiting without a keyframe, native placeholders, resync, fit', async () => {
  const { client, ws, joined } = await connectedAgent();
  const { FakeReplayer, made } = fakeReplayerClass();
  const wrapperStyle = {};
  FakeReplayer.prototype.wrapper = { style: wrapperStyle };
  const root = { innerHTML: '', clientWidth: 400, clientHeight: 600 };
  const view = new LiveView(client, { root, Replayer: FakeReplayer, fit: true });
  const statuses = [];
  view.on('status', (s, d) => statuses.push([s, d?.reason]));
  const timelines = [];
  view.on('timeline', (t) => timelines.push(t.length));
  await joined();
  ws.receive({ type: 'event', offset: 1, event: inc() }); // before any keyframe: dropped
  ws.receive({ type: 'caught_up', offset: 1 });
  assert.equal(view.status, 'waiting');
  assert.equal(view.stats.beforeKeyframe, 1);
  assert.equal(made.length, 0);

  ws.receive({ type: 'event', offset: 2, event: meta('https://shop/') });
  ws.receive({ type: 'event', offset: 3, event: full('Shop') });
  assert.equal(view.status, 'live');
  assert.equal(view.scale, 0.5);
  assert.equal(wrapperStyle.transform, 'scale(0.5)');

  ws.receive({ type: 'event', offset: 4, event: meta('native://checkout', 3000) });
  ws.receive({ type: 'event', offset: 5, event: full('Payment', 3000) });
  assert.equal(view.status, 'native');
  assert.equal(view.page.kind, 'native');
  assert.equal(view.page.page_id, 'checkout');
  assert.deepEqual(view.timeline.map((p) => [p.kind, p.offset]), [['web', 2], ['native', 4]]);

  ws.receive({ type: 'event', offset: 6, event: meta('https://shop/', 4000) });
  ws.receive({ type: 'event', offset: 7, event: full('Shop', 4000) });
  assert.equal(view.status, 'live');

  // resync during the session: reset, then the full state, offsets start over
  ws.receive({ type: 'resync', epoch: 'E2', reason: 'lagged' });
  assert.equal(view.status, 'resyncing');
  assert.equal(view.replayer, null);
  assert.equal(root.innerHTML, '');
  ws.receive({ type: 'event', offset: 6, event: meta('https://shop/', 4000) });
  ws.receive({ type: 'event', offset: 7, event: full('Shop', 4000) });
  assert.equal(view.status, 'resyncing');
  ws.receive({ type: 'caught_up', offset: 7 });
  assert.equal(view.status, 'live');
  assert.equal(view.stats.duplicates, 0, 'offsets after a resync are not duplicates');
  assert.deepEqual(view.timeline.map((p) => p.offset), [2, 4, 6], 'same offset, known page');
  assert.ok(statuses.some(([s, r]) => s === 'resyncing' && r === 'lagged'));

  // disconnect, resume: the replay is kept
  const replayer = view.replayer;
  ws.serverClose(1006);
  assert.equal(view.status, 'disconnected');
  await waitFor(() => client._ws && client._ws !== ws);
  const ws2 = client._ws;
  ws2.open();
  assert.deepEqual(ws2.framesOf('join')[0].resume, { epoch: 'E2', offset: 7 });
  ws2.receive(JOINED({ ...AGENT, epoch: 'E2', mode: 'resume' }));
  assert.equal(view.status, 'catching-up');
  ws2.receive({ type: 'event', offset: 8, event: inc(4001) });
  ws2.receive({ type: 'caught_up', offset: 8 });
  assert.equal(view.status, 'live');
  assert.equal(view.replayer, replayer);
  assert.equal(replayer.events.at(-1).timestamp, 4001);

  // the session ends (while already disconnected): the last frame stays, the status says so
  ws2.serverClose(1006);
  await waitFor(() => client._ws && client._ws !== ws2);
  const seen = [];
  view.on('status', (st, d) => seen.push([st, d.closed, d.code]));
  client._ws.open();
  client._ws.serverClose(4502, 'room_closed');
  assert.deepEqual(seen, [['disconnected', true, 4502]]);
  assert.equal(view.status, 'disconnected');
  assert.equal(view.replayer, replayer);
  assert.equal(replayer.destroyed, false);
  view.destroy();
  assert.equal(replayer.destroyed, true);
});

test('LiveView: a customer clock running ahead moves the replay clock forward', async () => {
  const { client, ws, joined } = await connectedAgent();
  const { FakeReplayer } = fakeReplayerClass();
  const future = Date.now() + 60_000;
  FakeReplayer.prototype.startLive = function (baseline) {
    this.baseline = baseline;
    this.timer = { timeOffset: 0, updateLiveTime() {} };
    this.service = { state: { context: { baselineTime: baseline } } };
  };
  const view = new LiveView(client, { root: { innerHTML: '' }, Replayer: FakeReplayer, maxLiveDelay: 500 });
  await joined();
  ws.receive({ type: 'caught_up', offset: 0 });
  ws.receive({ type: 'event', offset: 1, event: meta('https://a/', future) });
  ws.receive({ type: 'event', offset: 2, event: full('A', future + 1) });
  assert.equal(view.replayer.baseline, future + 1, 'the keyframe is not scheduled for later');
  ws.receive({ type: 'event', offset: 3, event: inc(future + 100) });
  assert.equal(view.replayer.timer.timeOffset, 0, 'within maxLiveDelay: untouched');
  ws.receive({ type: 'event', offset: 4, event: inc(future + 5000) });
  assert.equal(view.replayer.timer.timeOffset, 5000 - 1, 'due now');
  view.destroy();
  client.close();
});

function fakeRecord() {
  const calls = { starts: 0, stops: 0, full: [], emit: null };
  const record = (options) => {
    calls.starts++;
    calls.emit = options.emit;
    options.emit({ type: 4, data: { href: 'x' }, timestamp: 1 });
    options.emit({ type: 2, data: { node: {} }, timestamp: 1 });
    return () => {
      calls.stops++;
    };
  };
  record.takeFullSnapshot = (isCheckout) => calls.full.push(isCheckout);
  return { record, calls };
}

test('startRecording: native screens pause recording; the web view resumes with a snapshot; snapshotAcked', async () => {
  const fake = fakeWebSocket();
  const client = new RelayClient({ WebSocket: fake.FakeWebSocket, ping: false, reconnect: { initialDelay: 5 } });
  const { record, calls } = fakeRecord();
  const rec = startRecording(client, { record });
  const acked = rec.snapshotAcked();
  const p = client.connect('ws://relay.test/ws', 'T');
  await waitFor(() => fake.sockets.length === 1);
  const ws = fake.last();
  ws.open();
  ws.receive(JOINED());
  await p;
  const sent = ws.framesOf('event');
  assert.deepEqual(sent.map((f) => f.event.type), [4, 2]);
  ws.receive({ type: 'ack', id: sent[1].id, offset: 2 });
  assert.equal((await acked).offset, 2);

  const native = rec.showNativePage({ page_id: 'payment-sheet', title: 'Payment' });
  assert.equal(rec.paused, true);
  assert.equal(calls.stops, 1);
  const np = ws.framesOf('native_page');
  assert.equal(np.length, 1);
  assert.equal(np[0].page.page_id, 'payment-sheet');
  ws.receive({ type: 'ack', id: np[0].id, offset: 3 });
  assert.equal((await native).offset, 3);
  // a snapshot request while paused does nothing (the placeholder is what agents should see)
  ws.receive({ type: 'snapshot_request', reason: 'tail_too_large' });
  assert.deepEqual(calls.full, []);

  rec.showWebView();
  assert.equal(rec.paused, false);
  assert.equal(calls.starts, 2, 'a new rrweb recording: Meta + FullSnapshot');
  const again = ws.framesOf('event');
  assert.deepEqual(again.map((f) => f.event.type), [4, 2, 4, 2]);
  ws.receive({ type: 'ack', id: again[3].id, offset: 5 });
  assert.equal((await rec.snapshotAcked()).offset, 5);
  rec.showWebView(); // not paused: a full snapshot
  assert.deepEqual(calls.full, [true]);
  // a resync on join (e.g. the room's log was recreated): a new keyframe for agents
  ws.serverClose(1006);
  await waitFor(() => fake.sockets.length === 2);
  fake.last().open();
  fake.last().receive(JOINED({ epoch: 'E9', mode: 'resync', reason: 'epoch_changed' }));
  assert.deepEqual(calls.full, [true, true]);
  rec.stop();
  assert.equal(calls.stops, 2);
  client.close();
});
