// Agent guidance (docs/protocol.md §18): the agent points at things on the customer's real page.
//
// Agent side: `GuideSender` (pointer throttled, highlight, annotate, clear; re-sends the current
// state when a customer joins) and `attachGuide`, which maps the agent's mouse over the LiveView's
// replay to page coordinates and rrweb node ids (through the Replayer's mirror).
// Customer side: `GuideOverlay` in guide-overlay.js (it needs rrweb's recorder; this file does
// not, so an agent console's bundle has no recorder).

/** Default pointer throttle (ms): 10 moves per second, half the relay's limit (§18.4). */
export const POINTER_INTERVAL = 100;
/** Longest annotation text, in bytes of UTF-8 (§16). */
export const MAX_ANNOTATION_BYTES = 500;

/** @param {number} node */
function checkNode(node) {
  if (!Number.isInteger(node) || node < 1 || node > 0xffffffff) {
    throw new TypeError(`not an rrweb node id: ${node}`);
  }
}

/**
 * Sends guidance for an agent. Pointer moves are throttled (leading and trailing: the last
 * position always goes out); highlight and annotations are remembered and sent again when a
 * customer joins, since guidance is not stored by the relay (§18.2).
 */
export class GuideSender {
  /**
   * @param {import('../types/core.js').RelayClient} client
   * @param {{ pointerInterval?: number }} [options]
   */
  constructor(client, options = {}) {
    this.client = client;
    this.pointerInterval = options.pointerInterval ?? POINTER_INTERVAL;
    /** @type {number | null} */
    this.highlighted = null;
    /** @type {Map<number, string>} node -> text */
    this.annotations = new Map();
    this._lastPointer = 0;
    /** @type {any} */
    this._pendingPointer = null;
    this._timer = null;
    this._offs = [
      client.on('memberJoined', (m) => {
        if (m?.role === 'customer') this.resend();
      }),
      client.on('joined', () => this.resend()),
    ];
  }

  /**
   * The agent's pointer at page coordinates of the replayed document (CSS pixels).
   * @param {number} x
   * @param {number} y
   * @param {number} [node] the rrweb node id under the pointer
   */
  pointer(x, y, node) {
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    /** @type {{ kind: 'pointer', x: number, y: number, node?: number }} */
    const g = { kind: 'pointer', x, y };
    if (node !== undefined && Number.isInteger(node) && node > 0) g.node = node;
    const wait = this._lastPointer + this.pointerInterval - Date.now();
    if (wait <= 0 && !this._timer) {
      this._lastPointer = Date.now();
      this.client.sendGuide(g);
      return;
    }
    this._pendingPointer = g;
    if (!this._timer) {
      this._timer = setTimeout(() => {
        this._timer = null;
        const p = this._pendingPointer;
        this._pendingPointer = null;
        if (p) {
          this._lastPointer = Date.now();
          this.client.sendGuide(p);
        }
      }, Math.max(0, wait));
    }
  }

  /**
   * Draws a box around the element with this rrweb node id (replacing the previous one).
   * @param {number} node
   */
  highlight(node) {
    checkNode(node);
    this.highlighted = node;
    return this.client.sendGuide({ kind: 'highlight', node });
  }

  /**
   * A short bubble anchored to the element (1-500 bytes of UTF-8).
   * @param {number} node
   * @param {string} text
   */
  annotate(node, text) {
    checkNode(node);
    const bytes = new TextEncoder().encode(String(text)).length;
    if (bytes === 0 || bytes > MAX_ANNOTATION_BYTES) {
      throw new RangeError(`annotation text must be 1 to ${MAX_ANNOTATION_BYTES} bytes`);
    }
    this.annotations.set(node, String(text));
    return this.client.sendGuide({ kind: 'annotate', node, text: String(text) });
  }

  /** Removes pointer, highlight and bubbles on the customer's page. */
  clear() {
    this.highlighted = null;
    this.annotations.clear();
    this._cancelPointer();
    return this.client.sendGuide({ kind: 'clear' });
  }

  /** Sends the current highlight and bubbles again (a customer joined or reconnected). */
  resend() {
    if (this.highlighted === null && this.annotations.size === 0) return;
    this.client.sendGuide({ kind: 'clear' });
    if (this.highlighted !== null) this.client.sendGuide({ kind: 'highlight', node: this.highlighted });
    for (const [node, text] of this.annotations) this.client.sendGuide({ kind: 'annotate', node, text });
  }

  _cancelPointer() {
    clearTimeout(this._timer);
    this._timer = null;
    this._pendingPointer = null;
  }

  destroy() {
    this._cancelPointer();
    for (const off of this._offs) off();
    this._offs = [];
  }
}

/**
 * Where a mouse event over the replay points: page coordinates of the replayed document and the
 * rrweb node id of the element there (or undefined).
 * @param {any} replayer an rrweb Replayer (uses `iframe` and `getMirror()`)
 * @param {{ clientX: number, clientY: number }} e
 * @returns {{ x: number, y: number, node?: number } | null}
 */
export function replayPoint(replayer, e) {
  const iframe = replayer?.iframe;
  const doc = iframe?.contentDocument;
  const win = iframe?.contentWindow;
  if (!iframe || !doc) return null;
  const rect = iframe.getBoundingClientRect();
  const width = Number(iframe.width) || iframe.offsetWidth || rect.width;
  const scale = rect.width > 0 && width > 0 ? rect.width / width : 1;
  const lx = (e.clientX - rect.left) / scale;
  const ly = (e.clientY - rect.top) / scale;
  if (lx < 0 || ly < 0 || lx > width || ly > (Number(iframe.height) || rect.height / scale)) return null;
  const scrollX = win?.scrollX ?? doc.scrollingElement?.scrollLeft ?? 0;
  const scrollY = win?.scrollY ?? doc.scrollingElement?.scrollTop ?? 0;
  /** @type {{ x: number, y: number, node?: number }} */
  const point = { x: Math.round((lx + scrollX) * 100) / 100, y: Math.round((ly + scrollY) * 100) / 100 };
  const el = doc.elementFromPoint?.(lx, ly);
  const id = el ? replayer.getMirror?.().getId(el) : -1;
  if (Number.isInteger(id) && id > 0) point.node = id;
  return point;
}

/**
 * Connects the agent's mouse over a LiveView's replay to a GuideSender: moves send the pointer,
 * a click highlights the element under it (unless `click: false`). Follows replayer swaps.
 * Returns a function that detaches.
 * @param {import('../types/live-view.js').LiveView} liveView
 * @param {import('../types/live-view.js').GuideSender} sender
 * @param {{ pointer?: boolean, click?: boolean }} [options]
 */
export function attachGuide(liveView, sender, options = {}) {
  const pointer = options.pointer !== false;
  const click = options.click !== false;
  const root = liveView.root;
  const onMove = (/** @type {any} */ e) => {
    if (!pointer) return;
    const p = replayPoint(liveView.replayer, e);
    if (p) sender.pointer(p.x, p.y, p.node);
  };
  const onClick = (/** @type {any} */ e) => {
    if (!click) return;
    const p = replayPoint(liveView.replayer, e);
    if (p?.node) sender.highlight(p.node);
  };
  root?.addEventListener?.('mousemove', onMove);
  root?.addEventListener?.('click', onClick);
  return () => {
    root?.removeEventListener?.('mousemove', onMove);
    root?.removeEventListener?.('click', onClick);
  };
}
