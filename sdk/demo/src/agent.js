// The agent console: live view, status, presence, page timeline, chat, guidance (pointer,
// highlight, notes drawn on the customer's real page) and a voice call.

import 'rrweb/dist/style.css';
import {
  RelayClient,
  LiveView,
  ChatPanel,
  GuideSender,
  CallManager,
  attachGuide,
  replayPoint,
  MAX_ANNOTATION_BYTES,
} from '@assist-relay/sdk';
import { settings, demoToken, showStatus, clock } from './common.js';
import { Zoom } from './zoom.js';
import { PageHistory, PastView } from './past.js';
import { waitingCustomers } from './waiting.js';

const cfg = settings('agent');
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

// `?lobby`: no room yet; the agent picks a waiting customer from the list (nothing connects).
const lobby = cfg.query.has('lobby');
$('room-name').textContent = lobby ? '(none: pick a waiting customer)' : cfg.room;
document.title = lobby ? 'Assist console · waiting customers' : `Assist console · ${cfg.room}`;

const client = new RelayClient({ codec: cfg.codec, room: cfg.room });
// The console scales the replay itself (zoom.js): fit to the width, or 50 / 75 / 100 %.
// Created before the LiveView: the timeline (rendered on the view's events) asks it which pages it has.
const history = new PageHistory(client);
const view = new LiveView(client, { root: $('replay') });
const zoom = new Zoom({ select: /** @type {HTMLSelectElement} */ ($('zoom')), level: $('zoom-level') });
const liveZoom = zoom.attach($('replay'), () => view.replayer);
view.on('replayer', () => liveZoom.refresh());

// The side panel can be hidden so that the replay takes the whole width (small consoles).
const sideToggle = $('side-toggle');
let unread = 0;
function renderSideToggle() {
  const hidden = document.body.classList.contains('side-hidden');
  sideToggle.setAttribute('aria-pressed', String(hidden));
  sideToggle.textContent = hidden ? `Show panel${unread ? ` (${unread})` : ''}` : 'Hide panel';
  sideToggle.classList.toggle('unread', hidden && unread > 0);
}
sideToggle.addEventListener('click', () => {
  document.body.classList.toggle('side-hidden');
  unread = 0;
  renderSideToggle();
  requestAnimationFrame(() => zoom.applyAll());
});
client.on('chat', () => {
  if (document.body.classList.contains('side-hidden')) {
    unread++;
    renderSideToggle();
  }
});

// ---- status -------------------------------------------------------------------------------------

const NOTES = {
  connecting: 'Connecting to the relay…',
  'catching-up': 'Catching up…',
  resyncing: 'Resynchronizing…',
  waiting: 'Waiting for the customer’s page…',
  disconnected: 'Disconnected: reconnecting…',
};
/** @param {string} status @param {any} [detail] */
function onStatus(status, detail = {}) {
  let title;
  if (status === 'disconnected' && detail.closed) {
    title = detail.code === 4502 ? 'the session has ended' : `closed ${detail.code} ${detail.reason ?? ''}`;
  }
  showStatus($('status'), status, title);
  const note = $('replay-note');
  const text =
    status === 'disconnected' && detail.closed
      ? detail.code === 4502
        ? 'The session has ended.'
        : 'Disconnected.'
      : NOTES[/** @type {keyof typeof NOTES} */ (status)];
  // over an existing replay, only the states without a picture show the note
  const show = !!text && (!view.replayer || status === 'disconnected' || status === 'resyncing');
  note.textContent = text ?? '';
  note.hidden = !show;
  note.classList.toggle('overlay', !!view.replayer);
}
view.on('status', onStatus);
onStatus(view.status);

// ---- page (address bar) and timeline -------------------------------------------------------------

/** @param {any} p */
function pageLabel(p) {
  return p.kind === 'native' ? `native screen · ${p.pageId ?? p.url}` : p.url || '(unknown page)';
}
view.on('page', (p) => {
  const el = $('page-url');
  el.textContent = pageLabel(p);
  el.dataset.kind = p.kind;
  renderTimeline(view.timeline);
});
view.on('timeline', (t) => renderTimeline(t));

// A click on a timeline entry shows that page paused (past.js), beside the live replay, which
// keeps running underneath; "Back to live" (or Escape) returns.
const past = new PastView({
  history,
  box: $('past'),
  root: $('past-replay'),
  label: $('past-label'),
  seek: /** @type {HTMLInputElement} */ ($('past-seek')),
  at: $('past-at'),
  back: $('back-to-live'),
  time: clock,
  onChange: () => {
    renderTimeline(view.timeline);
    $('viewer-mode').dataset.mode = past.entry ? 'past' : 'live';
  },
});
const pastZoom = zoom.attach($('past-replay'), () => past.replayer);
past.o.zoom = pastZoom;
/** @param {any} p a timeline entry */
function openPast(p) {
  if (!past.show(p)) hint('That page is from before you joined: see it in the session’s recording.');
}

/** @param {any[]} pages */
function renderTimeline(pages) {
  const ol = $('timeline');
  ol.textContent = '';
  if (!pages.length) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = 'No pages yet';
    ol.append(li);
    return;
  }
  pages.forEach((p, i) => {
    const li = document.createElement('li');
    li.dataset.kind = p.kind;
    if (typeof p.offset === 'number') li.dataset.offset = String(p.offset);
    if (i === pages.length - 1) li.classList.add('current');
    const seekable = typeof p.offset === 'number' && history.has(p.offset);
    li.dataset.seekable = String(seekable);
    if (past.entry && past.entry.offset === p.offset) li.classList.add('viewing');
    li.title = `${p.url || ''}${seekable ? '\nClick: show this page, paused' : '\nBefore you joined: in the session’s recording'}`;
    if (seekable) {
      li.tabIndex = 0;
      li.setAttribute('role', 'button');
      li.addEventListener('click', () => openPast(p));
      li.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          openPast(p);
        }
      });
    }
    const time = document.createElement('span');
    time.className = 'tl-time';
    time.textContent = typeof p.ts === 'number' ? clock(p.ts) : '';
    const title = document.createElement('span');
    title.className = 'tl-title';
    title.textContent = p.title || (p.kind === 'native' ? 'Native screen' : 'Untitled page');
    const where = document.createElement('span');
    where.className = 'tl-url';
    where.textContent = p.kind === 'native' ? `native · ${p.pageId ?? p.url}` : shortUrl(p.url);
    where.title = p.url;
    li.append(time, title, where);
    ol.append(li);
  });
  if (!past.entry) ol.scrollTop = ol.scrollHeight;
}

/** @param {string} url */
function shortUrl(url) {
  try {
    const u = new URL(url);
    return `${u.pathname}${u.search}`;
  } catch {
    return url || '';
  }
}
renderTimeline(view.timeline);

// ---- presence --------------------------------------------------------------------------------------

function renderPresence() {
  const ul = $('presence');
  ul.textContent = '';
  const members = [...client.members.values()].sort(
    (a, b) => (a.role === b.role ? a.id.localeCompare(b.id) : a.role === 'customer' ? -1 : 1),
  );
  for (const m of members) {
    const li = document.createElement('li');
    li.dataset.id = m.id;
    li.dataset.role = m.role;
    const badge = document.createElement('span');
    badge.className = `role ${m.role}`;
    badge.textContent = m.role;
    const name = document.createElement('span');
    name.className = 'member-name';
    name.textContent = m.id + (client.you?.id === m.id ? ' (you)' : '');
    li.append(badge, name);
    ul.append(li);
  }
  if (!members.length) {
    const li = document.createElement('li');
    li.className = 'empty';
    li.textContent = 'Nobody here';
    ul.append(li);
  }
}
for (const ev of /** @type {const} */ (['joined', 'memberJoined', 'memberLeft'])) {
  client.on(ev, renderPresence);
}
client.on('closed', () => {
  client.members.clear();
  renderPresence();
});
renderPresence();

// ---- chat and end ------------------------------------------------------------------------------------

const chat = new ChatPanel(client, {
  log: $('chat-log'),
  input: /** @type {HTMLInputElement} */ ($('chat-input')),
  send: $('chat-send'),
});

// "End session" asks first (a modal dialog); only "End session" in it ends the room.
const endDialog = /** @type {HTMLDialogElement} */ ($('end-dialog'));
$('end').addEventListener('click', () => {
  if (!endDialog.open) endDialog.showModal();
});
endDialog.addEventListener('close', () => {
  if (endDialog.returnValue !== 'end') return;
  endDialog.returnValue = '';
  /** @type {HTMLButtonElement} */ ($('end')).disabled = true;
  client.end().catch(() => {});
});
client.on('closed', () => {
  /** @type {HTMLButtonElement} */ ($('end')).disabled = true;
  if (endDialog.open) endDialog.close();
});

// ---- waiting customers (GET /demo/rooms?state=waiting) ---------------------------------------------

const waiting = waitingCustomers({
  list: $('waiting'),
  note: $('waiting-note'),
  count: $('waiting-count'),
  room: lobby ? '' : cfg.room,
  clock,
  link: (room) => {
    const q = new URLSearchParams(cfg.query);
    q.set('room', room);
    q.delete('lobby');
    return `?${q}`;
  },
});

// ---- guidance (docs/protocol.md §18) --------------------------------------------------------------
//
// Point: the pointer follows the mouse over the replay (attachGuide, throttled by the SDK).
// Highlight / Annotate: a click in the replay picks the element under it (replayPoint: rrweb node
// id through the Replayer's mirror). The customer's page draws the guidance; the console draws
// its own copy over the replay (#guide-layer), since guidance is never echoed to agents.

/** Guidance held back while the customer's page (re)loads: its node ids may mean other elements. */
let parked = /** @type {{ highlighted: number | null, annotations: Map<number, string> } | null} */ (null);
let parkTimer = /** @type {any} */ (null);
let customerAway = true;
const hasCustomer = () => [...client.members.values()].some((m) => m.role === 'customer');
client.on('memberLeft', (m) => {
  if (m?.role === 'customer' && !hasCustomer()) customerAway = true;
});
// Registered before the GuideSender's own listener, which re-sends the current state on a
// customer's join: after a page load the customer's rrweb ids start again from 1, so the state is
// parked until the new page is in the replay (or, for a reconnect of the same page, 2.5 s).
client.on('memberJoined', (m) => {
  if (m?.role !== 'customer') return;
  const wasAway = customerAway;
  customerAway = false;
  if (!wasAway || (guide.highlighted === null && guide.annotations.size === 0)) return;
  parked = { highlighted: guide.highlighted, annotations: new Map(guide.annotations) };
  guide.highlighted = null;
  guide.annotations.clear();
  clearTimeout(parkTimer);
  parkTimer = setTimeout(() => revalidate(), 2500);
});
client.on('joined', () => {
  customerAway = !hasCustomer();
});

const guide = new GuideSender(client);
const replayRoot = $('replay');
const layer = $('guide-layer');
const annotationText = /** @type {HTMLInputElement} */ ($('annotation-text'));
const annotationSend = /** @type {HTMLButtonElement} */ ($('annotation-send'));

/** @type {'point' | 'highlight' | 'annotate' | null} */
let mode = null;
/** @type {(() => void) | null} */
let detachPointer = null;
/** @type {number | null} the element a note is being written for */
let annotateTarget = null;
/** @type {number | null} the element under the mouse (Highlight, Annotate) */
let hovered = null;
/** @type {Map<number, string>} what each guided node was (tag, id, text) when it was picked */
const signatures = new Map();

const TOOLS = { point: $('guide-point'), highlight: $('guide-highlight'), annotate: $('guide-annotate') };
const HINTS = {
  point: 'Move over the replay: the customer sees your pointer.',
  highlight: 'Click an element in the replay to highlight it on the customer’s page.',
  annotate: 'Click an element in the replay, type a short note, send.',
};

/** @param {string} [text] */
function hint(text) {
  $('guide-hint').textContent = text ?? (mode ? HINTS[mode] : '');
}

/** @param {'point' | 'highlight' | 'annotate'} m */
function setMode(m) {
  mode = mode === m ? null : m;
  for (const [k, b] of Object.entries(TOOLS)) {
    b.setAttribute('aria-pressed', String(k === mode));
    b.classList.toggle('active', k === mode);
  }
  detachPointer?.();
  detachPointer = mode === 'point' ? attachGuide(view, guide, { click: false }) : null;
  replayRoot.dataset.tool = mode ?? '';
  $('annotation-form').hidden = mode !== 'annotate';
  if (mode !== 'annotate') annotateTarget = null;
  hovered = null;
  updateAnnotationForm();
  hint();
  draw();
}
for (const [k, b] of Object.entries(TOOLS)) {
  b.addEventListener('click', () => setMode(/** @type {'point' | 'highlight' | 'annotate'} */ (k)));
}

/** The replayed element of an rrweb node id, or null. */
function replayElement(/** @type {number} */ node) {
  try {
    const el = view.replayer?.getMirror?.().getNode(node);
    return el && el.nodeType === 1 && el.isConnected ? /** @type {Element} */ (el) : null;
  } catch {
    return null;
  }
}
const signature = (/** @type {Element} */ el) =>
  `${el.tagName}#${el.id}|${(el.textContent ?? '').replace(/\s+/g, ' ').trim().slice(0, 60)}`;
const sameAsPicked = (/** @type {number} */ node) => {
  const el = replayElement(node);
  return !!el && signatures.has(node) && signature(el) === signatures.get(node);
};

/** The element (rrweb node id) under a mouse event over the replay; never <html>/<body>. */
function pick(/** @type {MouseEvent} */ e) {
  const p = replayPoint(view.replayer, e);
  const el = p?.node ? replayElement(p.node) : null;
  if (!p?.node || !el || el.tagName === 'HTML' || el.tagName === 'BODY') return null;
  return { node: p.node, el };
}

/** @param {() => boolean} fn */
function send(fn) {
  let sent;
  try {
    sent = fn();
  } catch (e) {
    hint(String(/** @type {any} */ (e)?.message ?? e));
    return;
  }
  if (!sent) hint('Not connected: sent again when the customer is back.');
  else if (!hasCustomer()) hint('No customer in the room yet: shown when the customer joins.');
  else hint();
}

replayRoot.addEventListener('click', (e) => {
  if (mode !== 'highlight' && mode !== 'annotate') return;
  const picked = pick(e);
  if (!picked) return;
  signatures.set(picked.node, signature(picked.el));
  if (mode === 'highlight') {
    send(() => guide.highlight(picked.node));
  } else {
    annotateTarget = picked.node;
    updateAnnotationForm();
    annotationText.focus();
  }
  draw();
});
replayRoot.addEventListener('mousemove', (e) => {
  if (mode !== 'highlight' && mode !== 'annotate') return;
  const node = pick(e)?.node ?? null;
  if (node !== hovered) {
    hovered = node;
    draw();
  }
});
replayRoot.addEventListener('mouseleave', () => {
  hovered = null;
  draw();
});

function updateAnnotationForm() {
  annotationText.disabled = mode !== 'annotate';
  annotationText.placeholder = annotateTarget === null ? 'Click an element, then type a note…' : 'A short note for the customer…';
  annotationSend.disabled = annotateTarget === null || annotationText.value.trim() === '';
}
annotationText.addEventListener('input', updateAnnotationForm);
$('annotation-form').addEventListener('submit', () => {
  const text = annotationText.value.trim();
  if (annotateTarget === null || !text) return;
  if (new TextEncoder().encode(text).length > MAX_ANNOTATION_BYTES) {
    hint(`Notes are at most ${MAX_ANNOTATION_BYTES} bytes.`);
    return;
  }
  const node = annotateTarget;
  send(() => guide.annotate(node, text));
  annotationText.value = '';
  annotateTarget = null;
  updateAnnotationForm();
  draw();
});

$('guide-clear').addEventListener('click', () => {
  parked = null;
  clearTimeout(parkTimer);
  send(() => guide.clear());
  annotateTarget = null;
  signatures.clear();
  updateAnnotationForm();
  draw();
});

/**
 * After a new keyframe (a new page, a checkout snapshot, the console's own resync) node ids may
 * mean other elements: keep the guidance whose element is still the one picked, send it again,
 * drop the rest. Returns false when the replay is not ready yet.
 */
function revalidate() {
  const doc = view.replayer?.iframe?.contentDocument;
  if (!doc?.body) return false;
  const wasParked = parked !== null;
  const hl = guide.highlighted ?? parked?.highlighted ?? null;
  const notes = new Map([...(parked?.annotations ?? []), ...guide.annotations]);
  parked = null;
  clearTimeout(parkTimer);
  const keepHl = hl !== null && sameAsPicked(hl) ? hl : null;
  const keepNotes = [...notes].filter(([n]) => sameAsPicked(n));
  if (wasParked || keepHl !== hl || keepNotes.length !== notes.size) {
    guide.highlighted = null;
    guide.annotations.clear();
    if (hl !== null || notes.size) guide.clear();
    if (keepHl !== null) guide.highlight(keepHl);
    for (const [n, t] of keepNotes) guide.annotate(n, t);
  }
  if (annotateTarget !== null && !sameAsPicked(annotateTarget)) annotateTarget = null;
  hovered = null;
  updateAnnotationForm();
  draw();
  return true;
}
view.on('replayer', () => {
  // the new Replayer builds its document on its next frames
  let tries = 0;
  const again = () => {
    if (!revalidate() && ++tries < 20) setTimeout(again, 150);
  };
  setTimeout(again, 100);
});

// The console's copy of the guidance, over the replay: a clip box at the replay iframe's place,
// holding boxes and bubbles at the replayed elements' places (scaled like the replay).
const clip = document.createElement('div');
clip.className = 'guide-clip';
layer.append(clip);
/** @type {Map<string, HTMLElement>} */
const drawnEls = new Map();
let frame = 0;

function draw() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    render();
  });
}

function render() {
  const iframe = view.replayer?.iframe;
  /** @type {{ key: string, node: number, cls: string, text?: string }[]} */
  const items = [];
  const hl = guide.highlighted ?? parked?.highlighted ?? null;
  if (hl !== null) items.push({ key: 'highlight', node: hl, cls: 'g-box' });
  if (annotateTarget !== null) items.push({ key: 'target', node: annotateTarget, cls: 'g-target' });
  if (hovered !== null && hovered !== hl && hovered !== annotateTarget) items.push({ key: 'hover', node: hovered, cls: 'g-hover' });
  for (const [node, text] of parked?.annotations ?? guide.annotations) items.push({ key: `note-${node}`, node, cls: 'g-note', text });

  const seen = new Set();
  if (iframe && items.length) {
    const fr = iframe.getBoundingClientRect();
    const lr = layer.getBoundingClientRect();
    const width = Number(iframe.width) || iframe.offsetWidth;
    const scale = fr.width > 0 && width > 0 ? fr.width / width : 1;
    Object.assign(clip.style, { left: `${fr.left - lr.left}px`, top: `${fr.top - lr.top}px`, width: `${fr.width}px`, height: `${fr.height}px` });
    for (const item of items) {
      const el = replayElement(item.node);
      if (!el) continue;
      const b = el.getBoundingClientRect();
      let d = drawnEls.get(item.key);
      if (!d) {
        d = document.createElement('div');
        drawnEls.set(item.key, d);
        clip.append(d);
      }
      d.className = item.cls;
      seen.add(item.key);
      if (item.text !== undefined) {
        if (d.textContent !== item.text) d.textContent = item.text;
        d.style.left = `${Math.max(4, b.left * scale)}px`;
        d.style.top = `${b.bottom * scale + 6}px`;
      } else {
        Object.assign(d.style, {
          left: `${b.left * scale - 3}px`,
          top: `${b.top * scale - 3}px`,
          width: `${b.width * scale + 6}px`,
          height: `${b.height * scale + 6}px`,
        });
      }
    }
  }
  for (const [key, d] of drawnEls) {
    if (!seen.has(key)) {
      d.remove();
      drawnEls.delete(key);
    }
  }
  // follow the elements while something is drawn (the replay moves them)
  if (items.length) draw();
}

// ---- voice call (docs/protocol.md §19) ----------------------------------------------------------

const calls = new CallManager(client, { audioElement: $('call-audio') });
let callError = '';
let callDetail = /** @type {any} */ ({});
/** @param {string} state @param {any} [detail] */
function renderCall(state = calls.state, detail = callDetail) {
  const el = $('call-state');
  el.dataset.state = state;
  el.textContent = state === 'ended' && detail.reason ? `ended · ${detail.reason}` : state;
  el.title = callError;
  const busy = ['calling', 'ringing', 'connecting', 'connected'].includes(state);
  const start = /** @type {HTMLButtonElement} */ ($('call-start'));
  start.hidden = busy;
  start.disabled = busy || client.state !== 'joined' || !hasCustomer();
  start.title = hasCustomer() ? 'Call the customer' : 'No customer in the room';
  $('call-hangup').hidden = !busy;
}
calls.on('state', (state, detail) => {
  if (state === 'calling') callError = '';
  callDetail = detail ?? {};
  renderCall(state, callDetail);
});
calls.on('error', (e) => {
  callError = e.message;
  console.warn('call', e.code, e.message);
});
$('call-start').addEventListener('click', () => {
  calls.start().catch((e) => {
    callError = String(e?.message ?? e);
    renderCall();
  });
});
$('call-hangup').addEventListener('click', () => calls.hangup());
for (const ev of /** @type {const} */ (['joined', 'memberJoined', 'memberLeft', 'closed', 'disconnected'])) {
  client.on(ev, () => renderCall());
}
renderCall();

// ---- connect -----------------------------------------------------------------------------------------

let ready;
if (lobby) {
  showStatus($('status'), 'lobby', 'not in a room');
  $('replay-note').textContent = 'Pick a customer from the waiting list.';
  for (const id of ['end', 'call-start', 'chat-send', 'chat-input']) /** @type {HTMLButtonElement} */ ($(id)).disabled = true;
  document.body.classList.add('lobby');
  ready = Promise.resolve(null);
} else {
  const caughtUp = new Promise((resolve) => client.once('caughtUp', resolve));
  const joined = client.connect(cfg.relay, demoToken(cfg.room, 'agent', cfg.sub));
  ready = Promise.all([joined, caughtUp]).then(([j]) => j);
  ready.catch((e) => console.warn('console not ready', e));
}

// @ts-ignore for tests and the console
window.demo = { client, view, ready, chat, guide, calls, zoom, liveZoom, past, history, waiting };
