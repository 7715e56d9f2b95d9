// ChatPanel against the fake WebSocket and a tiny fake DOM.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { RelayClient, ChatPanel } from '../src/index.js';
import { fakeWebSocket, waitFor, JOINED } from './fake-ws.js';

class FakeClassList {
  constructor() {
    this.set = new Set();
  }
  add(...c) {
    for (const x of c) this.set.add(x);
  }
  remove(...c) {
    for (const x of c) this.set.delete(x);
  }
  toggle(c, on) {
    if (on ?? !this.set.has(c)) this.set.add(c);
    else this.set.delete(c);
  }
  contains(c) {
    return this.set.has(c);
  }
}

class FakeEl {
  constructor(tag, doc) {
    this.tagName = tag.toUpperCase();
    this.ownerDocument = doc;
    this.children = [];
    this.classList = new FakeClassList();
    this.dataset = {};
    this._text = '';
    this.value = '';
    this.title = '';
    this.scrollTop = 0;
    this.clientHeight = 100;
    this.listeners = {};
  }
  set className(v) {
    this.classList = new FakeClassList();
    for (const c of v.split(/\s+/).filter(Boolean)) this.classList.add(c);
  }
  get className() {
    return [...this.classList.set].join(' ');
  }
  get scrollHeight() {
    return this.children.length * 30;
  }
  append(...els) {
    this.children.push(...els);
  }
  set textContent(v) {
    this._text = v;
    this.children = [];
  }
  get textContent() {
    return this.children.length ? this.children.map((c) => c.textContent).join('') : this._text;
  }
  addEventListener(type, fn) {
    (this.listeners[type] ??= []).push(fn);
  }
  removeEventListener(type, fn) {
    this.listeners[type] = (this.listeners[type] ?? []).filter((f) => f !== fn);
  }
  fire(type, event = {}) {
    const e = { preventDefault() {}, ...event };
    for (const fn of this.listeners[type] ?? []) fn(e);
  }
  query(cls) {
    return this.children.find((c) => c.classList.contains(cls));
  }
}

function fakeDocument() {
  const doc = { createElement: (tag) => new FakeEl(tag, doc) };
  return doc;
}

async function joinedClient(you) {
  const fake = fakeWebSocket();
  const client = new RelayClient({ WebSocket: fake.FakeWebSocket, ping: false });
  const p = client.connect('ws://relay.test/ws', 'T');
  await waitFor(() => fake.sockets.length === 1);
  fake.last().open();
  fake.last().receive(JOINED({ you, members: [you] }));
  await p;
  return { client, ws: fake.last() };
}

test('ChatPanel renders messages, sends from the input, confirms own messages in place', async () => {
  const { client, ws } = await joinedClient({ id: 'cust-1', role: 'customer' });
  const doc = fakeDocument();
  const log = doc.createElement('div');
  const input = doc.createElement('input');
  const send = doc.createElement('button');
  const panel = new ChatPanel(client, { log, input, send, document: doc });

  // incoming, with markup that must stay text
  ws.receive({ type: 'chat', id: 'm1', offset: 3, ts: 1718000000000, text: '<b>hi</b>', from: { id: 'alice', role: 'agent' } });
  assert.equal(log.children.length, 1);
  const m1 = log.children[0];
  assert.ok(m1.classList.contains('chat-msg'));
  assert.equal(m1.dataset.from, 'alice');
  assert.equal(m1.dataset.role, 'agent');
  assert.equal(m1.query('chat-text').textContent, '<b>hi</b>');
  assert.equal(m1.query('chat-from').textContent, 'alice · agent');
  assert.ok(!m1.classList.contains('own'));

  // empty input: nothing sent
  send.fire('click');
  assert.equal(ws.framesOf('chat').length, 0);

  // Enter sends; shown at once as pending
  input.value = '  where is export?  ';
  input.fire('keydown', { key: 'Enter', shiftKey: false });
  assert.equal(input.value, '');
  const sent = ws.framesOf('chat');
  assert.equal(sent.length, 1);
  assert.equal(sent[0].text, 'where is export?');
  assert.equal(log.children.length, 2);
  const mine = log.children[1];
  assert.ok(mine.classList.contains('pending'));
  assert.ok(mine.classList.contains('own'));
  assert.equal(mine.dataset.from, 'cust-1');
  assert.equal(mine.query('chat-from').textContent, 'You');

  // the relay's echo confirms it in place (no second element); the ack settles it
  ws.receive({ type: 'chat', id: sent[0].id, offset: 4, ts: 1718000000500, text: 'where is export?', from: { id: 'cust-1', role: 'customer' } });
  ws.receive({ type: 'ack', id: sent[0].id, offset: 4 });
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(log.children.length, 2);
  assert.ok(!mine.classList.contains('pending'));

  // Shift+Enter does not send
  input.value = 'line';
  input.fire('keydown', { key: 'Enter', shiftKey: true });
  assert.equal(ws.framesOf('chat').length, 1);

  // a refused message is marked failed
  const p = panel.send('x'.repeat(10));
  const id = ws.framesOf('chat').at(-1).id;
  ws.receive({ type: 'error', id, code: 'invalid_frame', message: 'too long' });
  await assert.rejects(p);
  assert.ok(log.children.at(-1).classList.contains('failed'));

  panel.destroy();
  ws.receive({ type: 'chat', id: 'm9', offset: 9, ts: 1, text: 'after', from: { id: 'alice', role: 'agent' } });
  assert.equal(log.children.length, 3, 'destroyed panels do not render');
  client.close();
});
