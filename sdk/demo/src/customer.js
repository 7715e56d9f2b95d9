// The customer page: a small multi-page app that records itself into the room, chats, shows the
// agent's guidance over the page and takes voice calls (after the customer's consent).

import { RelayClient, startRecording, ChatPanel, GuideOverlay, CallManager } from '@assist-relay/sdk';
import { settings, demoToken, showStatus } from './common.js';
import { dimAroundHighlight } from './dim.js';

const cfg = settings('customer');
const page = ['1', '2', '3'].includes(cfg.query.get('page') ?? '') ? cfg.query.get('page') : '1';
const NAME_KEY = 'assist-relay-demo.name';
const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

// ---- the app (before recording starts, so the first snapshot shows the right page) -----------

document.title = `ShopLite · ${{ 1: 'Details', 2: 'Basket', 3: 'Confirmation' }[page]}`;
for (const section of document.querySelectorAll('section.page')) {
  if (section instanceof HTMLElement && section.dataset.page !== page) section.remove();
}
for (const n of ['1', '2', '3']) {
  const a = /** @type {HTMLAnchorElement} */ (document.getElementById(`nav-${n}`));
  const q = new URLSearchParams(cfg.query);
  q.set('page', n);
  a.href = `?${q}`;
  if (n === page) a.classList.add('current');
}

if (page === '1') {
  const name = /** @type {HTMLInputElement} */ (document.getElementById('name'));
  name.value = sessionStorage.getItem(NAME_KEY) ?? '';
  name.addEventListener('input', () => sessionStorage.setItem(NAME_KEY, name.value));
  document.getElementById('details')?.addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem(NAME_KEY, name.value);
    location.href = /** @type {HTMLAnchorElement} */ (document.getElementById('nav-3')).href;
  });
}
if (page === '2') {
  const list = /** @type {HTMLElement} */ (document.getElementById('list'));
  let n = 0;
  const addItem = () => {
    const li = document.createElement('li');
    n++;
    li.innerHTML = `<span class="item-name"></span><span class="item-price"></span>`;
    /** @type {HTMLElement} */ (li.firstElementChild).textContent = `Item ${n}`;
    /** @type {HTMLElement} */ (li.lastElementChild).textContent = `¥${(n * 137) % 2000 + 100}`;
    list.append(li);
    return li;
  };
  for (let i = 0; i < 40; i++) addItem();
  document.getElementById('add')?.addEventListener('click', () => {
    addItem().scrollIntoView({ block: 'nearest' });
  });
}
if (page === '3') {
  const el = document.getElementById('confirm-name');
  if (el) el.textContent = sessionStorage.getItem(NAME_KEY) || '(no name given)';
}

// ---- the SDK ---------------------------------------------------------------------------------

const statusEl = document.getElementById('status');
const client = new RelayClient({ codec: cfg.codec, room: cfg.room });
client.on('joined', () => showStatus(statusEl, 'live'));
client.on('disconnected', () => showStatus(statusEl, 'disconnected'));
client.on('closed', (c) => {
  if (c.code !== 4502) {
    showStatus(statusEl, 'disconnected', `closed ${c.code}`);
    return;
  }
  // 4502 room_closed: an agent (or the backend) ended the session; nothing reconnects.
  showStatus(statusEl, 'ended', 'the session has ended');
  if (statusEl) statusEl.textContent = 'session ended';
  sessionEnded();
});

// The agent's guidance (pointer, highlight, notes): drawn in a 0×0 `rr-block` host with
// `pointer-events: none`, so it is never recorded and never takes the customer's clicks. Created
// before recording starts: the first snapshot has the (empty) host.
// dim: 'none': the demo shades the page itself (dim.js), around the highlight and the chat panel.
const overlay = new GuideOverlay(client, { dim: 'none' });
// A highlight dims the page around its element, never the element itself nor the chat panel.
dimAroundHighlight(client, overlay, {
  dim: /** @type {HTMLElement} */ (document.getElementById('guide-dim')),
  keep: [/** @type {HTMLElement} */ (document.getElementById('chat'))],
});

// Recording starts now: rrweb's first events are a Meta and a FullSnapshot of this page, queued
// until the client has joined. Passwords are masked by rrweb here and by the relay again.
const recording = startRecording(client, { maskInputOptions: { password: true } });

const chat = new ChatPanel(client, {
  log: /** @type {HTMLElement} */ (document.getElementById('chat-log')),
  input: /** @type {HTMLInputElement} */ (document.getElementById('chat-input')),
  send: document.getElementById('chat-send'),
});

/** The session is over (4502): say so, and the chat box takes no more messages. */
function sessionEnded() {
  $('session-ended').hidden = false;
  const input = /** @type {HTMLInputElement} */ ($('chat-input'));
  input.disabled = true;
  input.placeholder = 'The session has ended';
  /** @type {HTMLButtonElement} */ ($('chat-send')).disabled = true;
  $('chat').classList.add('ended');
  $('call-consent').hidden = true;
}

// Hybrid app: a native screen (recording paused, the relay shows agents a placeholder), and back.
const sheet = /** @type {HTMLElement} */ (document.getElementById('native-sheet'));
document.getElementById('native-open')?.addEventListener('click', () => {
  recording
    .showNativePage({
      pageId: 'payment-sheet',
      title: 'Payment',
      fields: { amount: '¥1,200', method: 'Wallet' },
    })
    .catch((e) => console.warn('native page report failed', e));
  sheet.hidden = false;
});
document.getElementById('native-close')?.addEventListener('click', () => {
  sheet.hidden = true;
  recording.showWebView(); // a fresh Meta + FullSnapshot replaces the placeholder
});

// Voice calls: an incoming call asks for consent first (#call-consent); the microphone is
// touched only after Accept (CallManager calls getUserMedia once `consent` resolved true).
/** @type {((ok: boolean) => void) | null} */
let answerConsent = null;
const calls = new CallManager(client, {
  audioElement: $('call-audio'),
  consent: ({ from }) =>
    new Promise((resolve) => {
      $('call-from').textContent = from?.id ? `${from.id} (support)` : 'Support';
      $('call-consent').hidden = false;
      answerConsent = (ok) => {
        answerConsent = null;
        $('call-consent').hidden = true;
        resolve(ok);
      };
      $('call-accept').focus();
    }),
});
$('call-accept').addEventListener('click', () => answerConsent?.(true));
$('call-decline').addEventListener('click', () => answerConsent?.(false));
$('call-hangup').addEventListener('click', () => calls.hangup());
let callError = '';
calls.on('error', (e) => {
  callError = /** @type {any} */ (e).code === 'answer_failed' && !navigator.mediaDevices
    ? 'no microphone access here (needs https or localhost)'
    : e.message;
  console.warn('call', e.code, e.message);
});
calls.on('state', (state, detail) => {
  if (state !== 'ringing') answerConsent?.(false); // the agent hung up while asking
  if (state === 'ringing') callError = '';
  const el = $('call-state');
  el.dataset.state = state;
  el.textContent = state === 'ended' && detail.reason ? `ended · ${detail.reason}` : state;
  el.title = callError;
  $('call-hangup').hidden = !['calling', 'connecting', 'connected'].includes(state);
});

const joined = client.connect(cfg.relay, demoToken(cfg.room, 'customer', cfg.sub));
showStatus(statusEl, 'connecting');
const ready = joined.then(() => recording.snapshotAcked());
ready.catch((e) => console.warn('demo not ready', e));

// Leave promptly on navigation, so that the next page's connection takes over.
addEventListener('pagehide', () => client.close());
// Back from the back/forward cache: that client is closed, start afresh.
addEventListener('pageshow', (e) => {
  if (e.persisted) location.reload();
});

// @ts-ignore for tests and the console
window.demo = { client, ready, recording, chat, page, overlay, calls };
