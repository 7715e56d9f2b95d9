// ChatPanel: a small chat UI over a RelayClient, for customer pages and agent consoles alike.

let panels = 0;

/**
 * Binds a message list, a text input and a send button to a client's chat.
 *
 * - Every message is one `.chat-msg` element with `data-from` (the sender's id), `data-role`,
 *   `data-id` (the message id), and the classes `own` (sent by this participant), `pending`
 *   (sent, not acked yet) and `failed`; inside, `.chat-from`, `.chat-time` and `.chat-text`.
 *   Text is set as text, never as markup.
 * - Sending: the button, or Enter in the input (Shift+Enter inserts a newline in a textarea).
 *   A sent message shows at once as `pending` and is confirmed by the relay's echo; the client
 *   resends it after reconnects until acked.
 * - The client already drops duplicates (`(from.id, id)`), so history replayed after a
 *   reconnect is not shown twice.
 */
export class ChatPanel {
  /**
   * @param {import('../types/core.js').RelayClient} client
   * @param {{ log: HTMLElement, input?: HTMLInputElement | HTMLTextAreaElement | null,
   *   send?: HTMLElement | null, document?: Document,
   *   label?: (from: import('../types/core.js').Member, own: boolean) => string,
   *   formatTime?: (ts: number) => string }} options
   */
  constructor(client, options) {
    this.client = client;
    this.log = options.log;
    this.input = options.input ?? null;
    this.sendButton = options.send ?? null;
    this._doc = options.document ?? this.log.ownerDocument ?? globalThis.document;
    this._label = options.label ?? defaultLabel;
    this._formatTime = options.formatTime ?? defaultTime;
    this._prefix = `chat${++panels}-${Math.random().toString(36).slice(2, 8)}`;
    this._n = 0;
    /** @type {Map<string, HTMLElement>} own messages by id */
    this._own = new Map();
    this._offs = [client.on('chat', (m) => this._onChat(m))];
    /** @type {[EventTarget, string, (e: any) => void][]} */
    this._listeners = [];
    if (this.sendButton) this._listen(this.sendButton, 'click', () => this.sendInput());
    if (this.input) {
      this._listen(this.input, 'keydown', (/** @type {KeyboardEvent} */ e) => {
        if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          this.sendInput();
        }
      });
    }
  }

  /** Sends what the input holds (trimmed; nothing when empty) and clears it. */
  sendInput() {
    if (!this.input) return null;
    const text = this.input.value.trim();
    if (!text) return null;
    this.input.value = '';
    return this.send(text);
  }

  /**
   * Sends a message; it shows at once as pending. Resolves with the `ack`.
   * @param {string} text
   */
  send(text) {
    const id = `${this._prefix}-${++this._n}`;
    const from = this.client.you ?? { id: 'you', role: 'customer' };
    const el = this._render({ id, text, from, own: true, ts: Date.now() });
    el.classList.add('pending');
    this._own.set(id, el);
    const p = this.client.sendChat(text, { id });
    p.then(
      () => el.classList.remove('pending'),
      (e) => {
        el.classList.remove('pending');
        el.classList.add('failed');
        el.title = String(e?.message ?? e);
      },
    );
    return p;
  }

  /** Removes every message from the list. */
  clear() {
    this.log.textContent = '';
    this._own.clear();
  }

  /** Stops following the client and the input. */
  destroy() {
    for (const off of this._offs) off();
    this._offs = [];
    for (const [el, type, fn] of this._listeners) el.removeEventListener(type, fn);
    this._listeners = [];
  }

  /** @param {{ id: string, text: string, from: any, ts: number, own: boolean }} m */
  _onChat(m) {
    const mine = m.own ? this._own.get(m.id) : undefined;
    if (mine) {
      // the relay's echo of a message sent here: confirm it in place
      mine.classList.remove('pending', 'failed');
      this._fill(mine, m);
      return;
    }
    this._render(m);
  }

  /** @param {{ id: string, text: string, from: any, ts: number, own: boolean }} m */
  _render(m) {
    const el = this._doc.createElement('div');
    el.className = 'chat-msg';
    const from = this._doc.createElement('span');
    from.className = 'chat-from';
    const time = this._doc.createElement('span');
    time.className = 'chat-time';
    const text = this._doc.createElement('div');
    text.className = 'chat-text';
    el.append(from, time, text);
    this._fill(el, m);
    const atBottom = this.log.scrollHeight - this.log.scrollTop - this.log.clientHeight < 40;
    this.log.append(el);
    if (atBottom || m.own) this.log.scrollTop = this.log.scrollHeight;
    return el;
  }

  /**
   * @param {HTMLElement} el
   * @param {{ id: string, text: string, from: any, ts: number, own: boolean }} m
   */
  _fill(el, m) {
    const fromId = m.from?.id ?? '';
    const role = m.from?.role ?? '';
    el.dataset.from = fromId;
    el.dataset.role = role;
    el.dataset.id = m.id;
    el.classList.toggle('own', !!m.own);
    const [from, time, text] = /** @type {HTMLElement[]} */ ([...el.children]);
    from.textContent = this._label({ id: fromId, role }, !!m.own);
    time.textContent = typeof m.ts === 'number' ? this._formatTime(m.ts) : '';
    text.textContent = m.text;
  }

  /**
   * @param {EventTarget} el
   * @param {string} type
   * @param {(e: any) => void} fn
   */
  _listen(el, type, fn) {
    el.addEventListener(type, fn);
    this._listeners.push([el, type, fn]);
  }
}

/**
 * `You`, or the sender's id with its role when the id does not already say it.
 * @param {import('../types/core.js').Member} from
 * @param {boolean} own
 */
function defaultLabel(from, own) {
  if (own) return 'You';
  return from.role && !from.id.toLowerCase().includes(from.role) ? `${from.id} · ${from.role}` : from.id;
}

/** @param {number} ts */
function defaultTime(ts) {
  const d = new Date(ts);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}
