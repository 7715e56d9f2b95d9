// Agent guidance (docs/protocol.md §18), customer side: `GuideOverlay` draws the pointer, a
// highlight box and bubbles over the page, in an element rrweb does not record (an `rr-block` host
// of zero size: rrweb records it as an empty 0×0 box and never serializes its children), with
// `pointer-events: none`. The agent side is guide.js.

import { record as rrwebRecord } from 'rrweb';

const OVERLAY_CSS = {
  host: 'position:fixed;left:0;top:0;width:0;height:0;overflow:visible;pointer-events:none;z-index:2147483647;margin:0;padding:0;border:0;',
  pointer:
    'position:fixed;width:14px;height:14px;margin:-7px 0 0 -7px;border-radius:50%;background:rgba(229,57,53,.85);box-shadow:0 0 0 3px rgba(229,57,53,.3);pointer-events:none;transition:left .08s linear,top .08s linear;',
  box: 'position:fixed;border:3px solid #e53935;border-radius:4px;pointer-events:none;box-sizing:border-box;',
  shade: 'position:fixed;left:0;top:0;width:100vw;height:100vh;background:rgba(0,0,0,.08);pointer-events:none;',
  bubble:
    'position:fixed;max-width:280px;padding:6px 10px;border-radius:6px;background:#212121;color:#fff;font:14px/1.35 system-ui,sans-serif;white-space:pre-wrap;word-break:break-word;pointer-events:none;',
};

/**
 * Draws an agent's guidance over the customer's page (customers). The overlay lives in a 0×0
 * fixed host with rrweb's block class, so the recording never contains it, and takes no clicks.
 * Highlight and bubbles follow their element (read every animation frame while shown). Cleared
 * on every `joined` (guidance is not replayed) and when the client closes.
 *
 * A highlight shades the page outside its element only (`dim: 'outside'`, the default): one
 * window-sized shade with an even-odd clip path cut out around the element and around every
 * `keep` element (say the chat panel, so the customer can still read and answer the agent).
 * `dim: 'none'` draws the box alone.
 */
export class GuideOverlay {
  /**
   * @param {import('../types/core.js').RelayClient} client
   * @param {{ document?: any, window?: any, mirror?: { getNode(id: number): any },
   *   blockClass?: string, pointerTimeout?: number, dim?: 'outside' | 'none',
   *   keep?: Element[] | (() => Element[]) }} [options]
   *   `mirror`: the recorder's mirror (default rrweb's `record.mirror`); `blockClass`: the class
   *   your rrweb `record` blocks (default `rr-block`); `pointerTimeout`: ms after which an idle
   *   pointer fades (default 5000); `dim`: shade the page outside a highlight (default
   *   `'outside'`) or not (`'none'`); `keep`: elements a highlight never shades.
   */
  constructor(client, options = {}) {
    this.client = client;
    this.doc = options.document ?? globalThis.document;
    this.win = options.window ?? globalThis.window ?? globalThis;
    this.mirror = options.mirror ?? rrwebRecord.mirror;
    this.blockClass = options.blockClass ?? 'rr-block';
    this.pointerTimeout = options.pointerTimeout ?? 5000;
    this.dim = options.dim ?? 'outside';
    /** @type {Element[] | (() => Element[])} */
    this.keep = options.keep ?? [];
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
    /** @type {HTMLElement | null} */
    this._pointerEl = null;
    /** @type {HTMLElement | null} */
    this._boxEl = null;
    /** @type {HTMLElement | null} */
    this._shadeEl = null;
    /** @type {Map<number, any>} */
    this._bubbleEls = new Map();
    this._frame = null;
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this._pointerTimer = undefined;
    this._offs = [
      client.on('guide', (g) => this.apply(g)),
      client.on('joined', () => this.clear()),
      client.on('closed', () => this.destroy()),
    ];
  }

  /**
   * Applies one guidance (as received in a `guide` frame). Unknown kinds are ignored.
   * @param {import('../types/core.js').Guidance} g
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
  /** @param {number} node */
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
      const el = (this._pointerEl ??= this._child(OVERLAY_CSS.pointer, 'pointer'));
      const sx = this.win.scrollX ?? 0;
      const sy = this.win.scrollY ?? 0;
      el.style.left = `${this.pointer.x - sx}px`;
      el.style.top = `${this.pointer.y - sy}px`;
    } else if (this._pointerEl) {
      this._pointerEl.remove();
      this._pointerEl = null;
    }
    const target = this.highlighted !== null ? this.element(this.highlighted) : null;
    if (target) {
      const box = (this._boxEl ??= this._child(OVERLAY_CSS.box, 'box'));
      const r = target.getBoundingClientRect();
      Object.assign(box.style, {
        left: `${r.left - 4}px`,
        top: `${r.top - 4}px`,
        width: `${r.width + 8}px`,
        height: `${r.height + 8}px`,
      });
    } else if (this._boxEl) {
      this._boxEl.remove();
      this._boxEl = null;
    }
    if (target && this.dim === 'outside') {
      const shade = (this._shadeEl ??= this._child(OVERLAY_CSS.shade, 'shade'));
      const clip = this._clip(target.getBoundingClientRect());
      if (shade.style.clipPath !== clip) shade.style.clipPath = clip;
    } else if (this._shadeEl) {
      this._shadeEl.remove();
      this._shadeEl = null;
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
        el = this._child(OVERLAY_CSS.bubble, 'bubble');
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

  /**
   * The shade's clip path: the window less the highlight (4 px around it) and the `keep` elements.
   * @param {{ left: number, top: number, width: number, height: number }} r
   */
  _clip(r) {
    const w = Math.round(this.win.innerWidth ?? 0);
    const h = Math.round(this.win.innerHeight ?? 0);
    let d = `M0 0H${w}V${h}H0Z`;
    const hole = (/** @type {typeof r} */ b, /** @type {number} */ pad) => {
      const x = Math.round(b.left - pad);
      const y = Math.round(b.top - pad);
      const bw = Math.round(b.width + 2 * pad);
      const bh = Math.round(b.height + 2 * pad);
      if (bw > 0 && bh > 0) d += `M${x} ${y}h${bw}v${bh}h${-bw}Z`;
    };
    hole(r, 4);
    const keep = typeof this.keep === 'function' ? this.keep() : this.keep;
    for (const el of keep ?? []) {
      if (el && el.isConnected !== false && typeof el.getBoundingClientRect === 'function') {
        hole(el.getBoundingClientRect(), 0);
      }
    }
    return `path(evenodd, '${d}')`;
  }

  _schedule() {
    const following = this.highlighted !== null || this.annotations.size > 0;
    if (!following || this._frame !== null) return;
    const raf = this.win.requestAnimationFrame?.bind(this.win) ?? ((/** @type {() => void} */ fn) => setTimeout(fn, 50));
    this._frame = raf(() => {
      this._frame = null;
      this.render();
    });
  }

  /**
   * @param {string} css
   * @param {string} part `data-part`: pointer, box, shade or bubble
   * @returns {HTMLElement}
   */
  _child(css, part) {
    const el = this._el('div', css);
    el.className = this.blockClass;
    el.setAttribute?.('data-part', part);
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
