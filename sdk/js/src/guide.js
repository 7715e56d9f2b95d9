// Agent guidance (docs/protocol.md §18): the agent points at things on the customer's real page.
//
// Agent side: `GuideSender` (pointer throttled, highlight, annotate, clear; re-sends the current
// state when a customer joins) and `attachGuide`, which maps the agent's mouse over the LiveView's
// replay to page coordinates and rrweb node ids (through the Replayer's mirror).
// Customer side: `GuideOverlay` draws the pointer, a highlight box and bubbles over the page, in
// an element rrweb does not record (an `rr-block` host of zero size: rrweb records it as an empty
// 0×0 box and never serializes its children), with `pointer-events: none`.

import { record as rrwebRecord } from 'rrweb';

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
   * @param {import('./client.js').RelayClient} client
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
    const g = { kind: 'pointer', x, y };
    if (Number.isInteger(node) && node > 0) g.node = node;
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

  /** Draws a box around the element with this rrweb node id (replacing the previous one). */
  highlight(node) {
    checkNode(node);
    this.highlighted = node;
    return this.client.sendGuide({ kind: 'highlight', node });
  }

  /** A short bubble anchored to the element (1-500 bytes of UTF-8). */
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
 * @param {import('./rrweb.js').LiveView} liveView
 * @param {GuideSender} sender
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

const OVERLAY_CSS = {
  host: 'position:fixed;left:0;top:0;width:0;height:0;overflow:visible;pointer-events:none;z-index:2147483647;margin:0;padding:0;border:0;',
  pointer:
    'position:fixed;width:14px;height:14px;margin:-7px 0 0 -7px;border-radius:50%;background:rgba(229,57,53,.85);box-shadow:0 0 0 3px rgba(229,57,53,.3);pointer-events:none;transition:left .08s linear,top .08s linear;',
  box: 'position:fixed;border:3px solid #e53935;border-radius:4px;box-shadow:0 0 0 4000px rgba(0,0,0,.08);pointer-events:none;box-sizing:border-box;',
  bubble:
    'position:fixed;max-width:280px;padding:6px 10px;border-radius:6px;background:#212121;color:#fff;font:14px/1.35 system-ui,sans-serif;white-space:pre-wrap;word-break:break-word;pointer-events:none;',
};

/**
 * Draws an agent's guidance over the customer's page (customers). The overlay lives in a 0×0
 * fixed host with rrweb's block class, so the recording never contains it, and takes no clicks.
 * Highlight and bubbles follow their element (read every animation frame while shown). Cleared
 * on every `joined` (guidance is not replayed) and when the client closes.
 */
export class GuideOverlay {
  /**
   * @param {import('./client.js').RelayClient} client
   * @param {{ document?: any, window?: any, mirror?: { getNode(id: number): any },
   *   blockClass?: string, pointerTimeout?: number }} [options]
   *   `mirror`: the recorder's mirror (default rrweb's `record.mirror`); `blockClass`: the class
   *   your rrweb `record` blocks (default `rr-block`); `pointerTimeout`: ms after which an idle
   *   pointer fades (default 5000).
   */
  constructor(client, options = {}) {
    this.client = client;
    this.doc = options.document ?? globalThis.document;
    this.win = options.window ?? globalThis.window ?? globalThis;
    this.mirror = options.mirror ?? rrwebRecord.mirror;
    this.blockClass = options.blockClass ?? 'rr-block';
    this.pointerTimeout = options.pointerTimeout ?? 5000;
    /** @type {{ x: number, y: number } | null} */
    this.pointer = null;
    /** @type {number | null} */
    this.highlighted = null;
    /** @type {Map<number, string>} */
    this.annotations = new Map();
    this.host = this._el('div', OVERLAY_CSS.host);
    this.host.className = `${this.blockClass} assist-relay-guide`;
    this.host.setAttribute?.('aria-hidden', 'true');
    this.host.setAttribute?.('data-assist-relay', 'guide');
    (this.doc.body ?? this.doc.documentElement).appendChild(this.host);
    this._pointerEl = null;
    this._boxEl = null;
    /** @type {Map<number, any>} */
    this._bubbleEls = new Map();
    this._frame = null;
    this._pointerTimer = null;
    this._offs = [
      client.on('guide', (g) => this.apply(g)),
      client.on('joined', () => this.clear()),
      client.on('closed', () => this.destroy()),
    ];
  }

  /**
   * Applies one guidance (as received in a `guide` frame). Unknown kinds are ignored.
   * @param {{ kind: string, x?: number, y?: number, node?: number, text?: string }} g
   */
  apply(g) {
    switch (g?.kind) {
      case 'pointer':
        this.pointer = { x: g.x, y: g.y };
        clearTimeout(this._pointerTimer);
        this._pointerTimer = setTimeout(() => {
          this.pointer = null;
          this.render();
        }, this.pointerTimeout);
        break;
      case 'highlight':
        this.highlighted = g.node;
        break;
      case 'annotate':
        this.annotations.set(g.node, String(g.text ?? ''));
        break;
      case 'clear':
        this.clear();
        return;
      default:
        return;
    }
    this.render();
  }

  /** Removes everything drawn. */
  clear() {
    this.pointer = null;
    this.highlighted = null;
    this.annotations.clear();
    clearTimeout(this._pointerTimer);
    this.render();
  }

  /** The live element of an rrweb node id, or null (a node the page no longer has). */
  element(node) {
    let el = null;
    try {
      el = this.mirror?.getNode(node) ?? null;
    } catch {
      el = null;
    }
    return el && typeof el.getBoundingClientRect === 'function' ? el : null;
  }

  /** Draws the current state (called on every change and every animation frame while shown). */
  render() {
    if (!this.host) return;
    // pointer: page coordinates of the replay -> this window's viewport
    if (this.pointer) {
      this._pointerEl ??= this._child(OVERLAY_CSS.pointer);
      const sx = this.win.scrollX ?? 0;
      const sy = this.win.scrollY ?? 0;
      this._pointerEl.style.left = `${this.pointer.x - sx}px`;
      this._pointerEl.style.top = `${this.pointer.y - sy}px`;
    } else if (this._pointerEl) {
      this._pointerEl.remove();
      this._pointerEl = null;
    }
    const target = this.highlighted !== null ? this.element(this.highlighted) : null;
    if (target) {
      this._boxEl ??= this._child(OVERLAY_CSS.box);
      const r = target.getBoundingClientRect();
      Object.assign(this._boxEl.style, {
        left: `${r.left - 4}px`,
        top: `${r.top - 4}px`,
        width: `${r.width + 8}px`,
        height: `${r.height + 8}px`,
      });
    } else if (this._boxEl) {
      this._boxEl.remove();
      this._boxEl = null;
    }
    for (const [node, el] of this._bubbleEls) {
      if (!this.annotations.has(node)) {
        el.remove();
        this._bubbleEls.delete(node);
      }
    }
    for (const [node, text] of this.annotations) {
      const anchor = this.element(node);
      let el = this._bubbleEls.get(node);
      if (!anchor) {
        if (el) el.style.display = 'none';
        continue;
      }
      if (!el) {
        el = this._child(OVERLAY_CSS.bubble);
        this._bubbleEls.set(node, el);
      }
      if (el.textContent !== text) el.textContent = text; // text, never markup
      const r = anchor.getBoundingClientRect();
      el.style.display = 'block';
      el.style.left = `${Math.max(4, r.left)}px`;
      el.style.top = `${r.bottom + 8}px`;
    }
    this._schedule();
  }

  /** Whether anything is drawn. */
  get visible() {
    return !!(this._pointerEl || this._boxEl || this._bubbleEls.size);
  }

  _schedule() {
    const following = this.highlighted !== null || this.annotations.size > 0;
    if (!following || this._frame !== null) return;
    const raf = this.win.requestAnimationFrame?.bind(this.win) ?? ((fn) => setTimeout(fn, 50));
    this._frame = raf(() => {
      this._frame = null;
      this.render();
    });
  }

  /** @param {string} css */
  _child(css) {
    const el = this._el('div', css);
    el.className = this.blockClass;
    this.host.appendChild(el);
    return el;
  }

  /**
   * @param {string} tag
   * @param {string} css
   */
  _el(tag, css) {
    const el = this.doc.createElement(tag);
    el.style.cssText = css;
    return el;
  }

  destroy() {
    for (const off of this._offs) off();
    this._offs = [];
    clearTimeout(this._pointerTimer);
    if (this._frame !== null) {
      if (this.win.cancelAnimationFrame) this.win.cancelAnimationFrame(this._frame);
      else clearTimeout(this._frame);
      this._frame = null;
    }
    this.host?.remove();
    this.host = null;
  }
}
