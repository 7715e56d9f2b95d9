// Agent guidance (§18): client hooks, GuideSender (throttled pointer, re-send on join),
// GuideOverlay (drawn in an unrecorded 0×0 rr-block host, follows elements through the recorder's
// mirror) and replayPoint, against the fake WebSocket and a tiny fake DOM.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { RelayClient, GuideSender, GuideOverlay, replayPoint, attachGuide } from '../src/index.js';
import { fakeWebSocket, waitFor, JOINED } from './fake-ws.js';

async function joinedClient(codec = 'json', joinedExtra = {}) {
  const fake = fakeWebSocket();
  const client = new RelayClient({ WebSocket: fake.FakeWebSocket, codec, ping: false, reconnect: false });
  const p = client.connect('ws://relay.test/ws', 'T');
  await waitFor(() => fake.sockets.length === 1);
  const ws = fake.last();
  ws.open();
  ws.receive(JOINED(joinedExtra));
  await p;
  return { client, ws };
}

/** A minimal DOM: elements with style, classes, children, listeners. */
function fakeDom() {
  class El {
    constructor(tag) {
      this.tagName = tag.toUpperCase();
      this.style = { cssText: '' };
      this.className = '';
      this.children = [];
      this.parent = null;
      this.attributes = {};
      this.textContent = '';
      this.listeners = {};
    }
    appendChild(c) {
      c.parent = this;
      this.children.push(c);
      return c;
    }
    remove() {
      if (!this.parent) return;
      this.parent.children = this.parent.children.filter((c) => c !== this);
      this.parent = null;
    }
    setAttribute(k, v) {
      this.attributes[k] = String(v);
    }
    addEventListener(name, fn) {
      (this.listeners[name] ??= []).push(fn);
    }
    removeEventListener(name, fn) {
      this.listeners[name] = (this.listeners[name] ?? []).filter((f) => f !== fn);
    }
    dispatch(name, e) {
      for (const fn of this.listeners[name] ?? []) fn(e);
    }
  }
  const body = new El('body');
  const document = { body, createElement: (t) => new El(t) };
  const frames = [];
  const window = {
    scrollX: 0,
    scrollY: 0,
    requestAnimationFrame: (fn) => {
      frames.push(fn);
      return frames.length;
    },
    cancelAnimationFrame: () => {},
  };
  const runFrame = () => {
    const fns = frames.splice(0);
    for (const fn of fns) fn();
  };
  return { El, document, window, body, runFrame };
}

function target(rect) {
  return { rect, getBoundingClientRect() { return this.rect; } };
}

test('guide and signal frames are emitted; ice servers come from joined; sendGuide/sendSignal send frames', async () => {
  for (const codec of ['json', 'msgpack']) {
    const ice = [{ urls: ['stun:stun.example.com:3478'] }];
    const { client, ws } = await joinedClient(codec, { ice_servers: ice });
    assert.deepEqual(client.iceServers, ice);
    const got = [];
    client.on('guide', (g, meta) => got.push(['guide', g, meta]));
    client.on('signal', (s, meta) => got.push(['signal', s, meta]));
    const agent = { id: 'ag', role: 'agent' };
    ws.receive({ type: 'guide', offset: 7, from: agent, guide: { kind: 'pointer', x: 12.5, y: 3, node: 9 } });
    ws.receive({ type: 'signal', from: agent, signal: { kind: 'hangup', call: 'c1' } });
    assert.deepEqual(got, [
      ['guide', { kind: 'pointer', x: 12.5, y: 3, node: 9 }, { from: agent, offset: 7 }],
      ['signal', { kind: 'hangup', call: 'c1' }, { from: agent }],
    ]);
    assert.equal(client.offset, null, 'guidance is not an entry: the resume offset is untouched');
    assert.equal(client.sendGuide({ kind: 'highlight', node: 4 }, { id: 'g1' }), true);
    assert.equal(client.sendSignal({ kind: 'ice', call: 'c1', candidate: '' }, 'ag'), true);
    assert.deepEqual(ws.framesOf('guide'), [{ type: 'guide', id: 'g1', guide: { kind: 'highlight', node: 4 } }]);
    assert.deepEqual(ws.framesOf('signal'), [{ type: 'signal', signal: { kind: 'ice', call: 'c1', candidate: '' }, to: 'ag' }]);
    client.close();
    assert.equal(client.sendGuide({ kind: 'clear' }), false, 'not queued while not joined');
  }
});

test('GuideSender throttles pointer moves and always sends the last one', async () => {
  const { client, ws } = await joinedClient();
  const sender = new GuideSender(client, { pointerInterval: 40 });
  for (let x = 0; x < 20; x++) sender.pointer(x, 5, x % 2 ? 3 : undefined);
  const pointers = () => ws.framesOf('guide').map((f) => f.guide);
  assert.deepEqual(pointers(), [{ kind: 'pointer', x: 0, y: 5 }], 'leading move at once');
  await waitFor(() => pointers().length === 2, 500, 'the trailing move');
  assert.deepEqual(pointers()[1], { kind: 'pointer', x: 19, y: 5, node: 3 });
  sender.pointer(Number.NaN, 1);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(pointers().length, 2, 'non-finite coordinates are not sent');
  sender.destroy();
});

test('GuideSender re-sends highlight and bubbles when a customer joins, and checks its input', async () => {
  const { client, ws } = await joinedClient('json', { you: { id: 'ag', role: 'agent' } });
  const sender = new GuideSender(client);
  sender.highlight(57);
  sender.annotate(57, 'Export is here');
  assert.throws(() => sender.highlight(0), TypeError);
  assert.throws(() => sender.annotate(5, 'é'.repeat(251)), RangeError);
  assert.throws(() => sender.annotate(5, ''), RangeError);
  ws.receive({ type: 'member_joined', member: { id: 'ag-2', role: 'agent' } });
  assert.equal(ws.framesOf('guide').length, 2, 'agents joining change nothing');
  ws.receive({ type: 'member_joined', member: { id: 'cust-1', role: 'customer' } });
  assert.deepEqual(
    ws.framesOf('guide').slice(2).map((f) => f.guide),
    [
      { kind: 'clear' },
      { kind: 'highlight', node: 57 },
      { kind: 'annotate', node: 57, text: 'Export is here' },
    ],
  );
  sender.clear();
  ws.receive({ type: 'member_joined', member: { id: 'cust-2', role: 'customer' } });
  assert.deepEqual(ws.framesOf('guide').at(-1).guide, { kind: 'clear' }, 'nothing to re-send after clear');
  sender.destroy();
});

test('GuideOverlay draws in an unrecorded, click-through 0×0 host and follows elements by node id', async () => {
  const dom = fakeDom();
  const { client, ws } = await joinedClient();
  const nodes = new Map([[57, target({ left: 100, top: 50, width: 80, height: 20, bottom: 70 })]]);
  const mirror = { getNode: (id) => nodes.get(id) ?? null };
  // (the shade is the next test's)
  const overlay = new GuideOverlay(client, { document: dom.document, window: dom.window, mirror, dim: 'none' });
  const host = overlay.host;
  assert.equal(dom.body.children[0], host);
  assert.match(host.className, /(^| )rr-block( |$)/, 'rrweb blocks the host: its children are never recorded');
  assert.match(host.style.cssText, /pointer-events:none/);
  assert.match(host.style.cssText, /width:0;height:0/, 'a blocked element is replayed as a box of its size: 0×0');
  assert.equal(host.attributes['aria-hidden'], 'true');

  const agent = { id: 'ag', role: 'agent' };
  ws.receive({ type: 'guide', offset: 3, from: agent, guide: { kind: 'highlight', node: 57 } });
  const box = host.children[0];
  assert.equal(box.style.left, '96px');
  assert.equal(box.style.width, '88px');
  assert.match(box.className, /rr-block/);
  // the element moves (scroll, layout): the box follows on the next frame
  nodes.get(57).rect = { left: 100, top: 10, width: 80, height: 20, bottom: 30 };
  dom.runFrame();
  assert.equal(box.style.top, '6px');

  ws.receive({ type: 'guide', offset: 3, from: agent, guide: { kind: 'annotate', node: 57, text: '<b>here</b>' } });
  const bubble = host.children[1];
  assert.equal(bubble.textContent, '<b>here</b>', 'text, never markup');
  assert.equal(bubble.style.top, '38px');

  dom.window.scrollY = 100;
  ws.receive({ type: 'guide', offset: 3, from: agent, guide: { kind: 'pointer', x: 30, y: 150 } });
  const dot = host.children.find((c) => c !== box && c !== bubble);
  assert.equal(dot.style.left, '30px');
  assert.equal(dot.style.top, '50px', 'page coordinates minus the scroll offset');

  ws.receive({ type: 'guide', offset: 3, from: agent, guide: { kind: 'highlight', node: 999 } });
  assert.ok(!host.children.includes(box), 'an unknown node draws nothing');
  ws.receive({ type: 'guide', offset: 3, from: agent, guide: { kind: 'wave' } });
  ws.receive({ type: 'guide', offset: 3, from: agent, guide: { kind: 'clear' } });
  assert.equal(host.children.length, 0);
  assert.equal(overlay.visible, false);

  ws.receive({ type: 'guide', offset: 3, from: agent, guide: { kind: 'highlight', node: 57 } });
  assert.equal(host.children.length, 1);
  ws.receive(JOINED({ mode: 'resume' }));
  assert.equal(host.children.length, 0, 'cleared on every joined: guidance is not replayed');
  overlay.destroy();
  assert.equal(dom.body.children.length, 0);
});

test('replayPoint maps a mouse event over a scaled replay to page coordinates and a node id', () => {
  const el = { id: 'button' };
  const replayer = {
    iframe: {
      width: '1000',
      height: '800',
      getBoundingClientRect: () => ({ left: 10, top: 20, width: 500, height: 400 }),
      contentWindow: { scrollX: 0, scrollY: 300 },
      contentDocument: { elementFromPoint: (x, y) => (x === 100 && y === 60 ? el : null) },
    },
    getMirror: () => ({ getId: (n) => (n === el ? 57 : -1) }),
  };
  assert.deepEqual(replayPoint(replayer, { clientX: 60, clientY: 50 }), { x: 100, y: 360, node: 57 });
  assert.deepEqual(replayPoint(replayer, { clientX: 12, clientY: 22 }), { x: 4, y: 304 });
  assert.equal(replayPoint(replayer, { clientX: 5, clientY: 50 }), null, 'outside the replay');
  assert.equal(replayPoint(null, { clientX: 5, clientY: 50 }), null);
});

test('attachGuide sends the pointer on mouse moves and highlights on click', async () => {
  const dom = fakeDom();
  const { client, ws } = await joinedClient();
  const sender = new GuideSender(client, { pointerInterval: 0 });
  const el = {};
  const liveView = {
    root: new dom.El('div'),
    replayer: {
      iframe: {
        width: '800',
        height: '600',
        getBoundingClientRect: () => ({ left: 0, top: 0, width: 800, height: 600 }),
        contentWindow: { scrollX: 0, scrollY: 0 },
        contentDocument: { elementFromPoint: () => el },
      },
      getMirror: () => ({ getId: () => 12 }),
    },
  };
  const detach = attachGuide(liveView, sender);
  liveView.root.dispatch('mousemove', { clientX: 5, clientY: 6 });
  liveView.root.dispatch('click', { clientX: 5, clientY: 6 });
  assert.deepEqual(
    ws.framesOf('guide').map((f) => f.guide),
    [
      { kind: 'pointer', x: 5, y: 6, node: 12 },
      { kind: 'highlight', node: 12 },
    ],
  );
  detach();
  liveView.root.dispatch('click', { clientX: 5, clientY: 6 });
  assert.equal(ws.framesOf('guide').length, 2);
  sender.destroy();
});

test('a highlight shades the page only outside its element and the kept elements', async () => {
  const dom = fakeDom();
  dom.window.innerWidth = 1000;
  dom.window.innerHeight = 600;
  const { client, ws } = await joinedClient();
  const nodes = new Map([[57, target({ left: 100, top: 50, width: 80, height: 20, bottom: 70 })]]);
  const mirror = { getNode: (id) => nodes.get(id) ?? null };
  const chat = target({ left: 700, top: 300, width: 300, height: 300, bottom: 600 });
  const overlay = new GuideOverlay(client, { document: dom.document, window: dom.window, mirror, keep: [chat] });
  const agent = { id: 'ag', role: 'agent' };
  ws.receive({ type: 'guide', offset: 3, from: agent, guide: { kind: 'highlight', node: 57 } });
  const [box, shade] = overlay.host.children;
  assert.doesNotMatch(box.style.cssText, /box-shadow:0 0 0 4000px/, 'the box no longer shades the whole window');
  assert.match(shade.style.cssText, /position:fixed;left:0;top:0;width:100vw;height:100vh/);
  assert.match(shade.style.cssText, /pointer-events:none/);
  assert.equal(shade.attributes['data-part'], 'shade');
  assert.equal(box.attributes['data-part'], 'box');
  assert.equal(
    shade.style.clipPath,
    "path(evenodd, 'M0 0H1000V600H0ZM96 46h88v28h-88ZM700 300h300v300h-300Z')",
    'the window less the highlight (4 px around it) and the chat panel',
  );
  // the element moves: the hole follows on the next frame
  nodes.get(57).rect = { left: 100, top: 10, width: 80, height: 20, bottom: 30 };
  dom.runFrame();
  assert.match(shade.style.clipPath, /M96 6h88v28h-88Z/);
  ws.receive({ type: 'guide', offset: 3, from: agent, guide: { kind: 'clear' } });
  assert.equal(overlay.host.children.length, 0, 'no shade without a highlight');
  overlay.destroy();
});
