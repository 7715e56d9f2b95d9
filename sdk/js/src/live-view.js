// Live replay for agents: an rrweb Replayer fed by a RelayClient, and the page helpers it uses.
// (Recording for customers is recording.js: an agent console's bundle has no recorder.)

import { Replayer as RrwebReplayer } from 'rrweb';
import { Emitter } from './emitter.js';
import { withPageAlias } from './wire.js';

const EVENT_FULL_SNAPSHOT = 2;
const EVENT_META = 4;
const NATIVE_SCHEME = 'native://';

/**
 * The text of the first `<title>` of an rrweb FullSnapshot, or undefined.
 * @param {any} event
 * @returns {string | undefined}
 */
export function snapshotTitle(event) {
  const root = event?.data?.node;
  if (!root) return undefined;
  const stack = [root];
  let visited = 0;
  while (stack.length && visited++ < 100000) {
    const n = stack.pop();
    if (n?.type === 2 && String(n.tagName).toLowerCase() === 'title') {
      const text = (n.childNodes ?? [])
        .map((/** @type {any} */ c) => (typeof c?.textContent === 'string' ? c.textContent : ''))
        .join('')
        .trim();
      return text || undefined;
    }
    const kids = n?.childNodes;
    if (Array.isArray(kids)) for (let i = kids.length - 1; i >= 0; i--) stack.push(kids[i]);
  }
  return undefined;
}

/**
 * What an rrweb Meta event's `href` says about the page.
 * @param {string} href
 * @returns {{ kind: 'web' | 'native', url: string, pageId?: string }}
 */
export function describeHref(href) {
  const url = typeof href === 'string' ? href : '';
  if (url.startsWith(NATIVE_SCHEME)) {
    return withPageAlias({ kind: 'native', url, pageId: url.slice(NATIVE_SCHEME.length) });
  }
  return { kind: 'web', url };
}

/**
 * Replays a customer's page live for an agent.
 *
 * - Feeds the client's events into an rrweb `Replayer` in live mode. A fresh join and every
 *   resync (on join or during the session) discard the replay; the full state that follows starts
 *   a new one. Catch-up events (the keyframe and the tail) apply at once, live events as they come.
 * - Events at or below the last offset applied in the current epoch are dropped (no duplicates);
 *   events before the first keyframe (Meta + FullSnapshot) are dropped too: there is nothing to
 *   apply them to (`status` is `waiting`).
 * - A new keyframe during the session (navigation, a checkout snapshot, a native-page
 *   placeholder) starts a fresh Replayer once its FullSnapshot is in, swapped without a blank
 *   frame; this bounds memory and re-aligns the replay clock with the customer's clock.
 * - Tracks the current page (`page`) and the page timeline (`timeline`, from `joined.pages` plus
 *   the keyframes seen live); native screens are recognized by `native://` hrefs (§11.1).
 * - Emits `status` (`connecting`, `catching-up`, `live`, `resyncing`, `native`, `waiting`,
 *   `disconnected`), `page`, `timeline` and `replayer`.
 */
export class LiveView extends Emitter {
  /**
   * @param {import('../types/core.js').RelayClient} client
   * @param {{ root: Element, Replayer?: any, replayerOptions?: Record<string, any>,
   *   fit?: boolean, maxLiveDelay?: number }} options
   *   `Replayer` injects another rrweb Replayer class. `fit` scales the replay down to the root's
   *   size. `maxLiveDelay` (ms, default 1000): a live event due later than this on the replay
   *   clock (the customer's clock runs ahead of the agent's) moves the clock forward.
   */
  constructor(client, options) {
    super();
    this.client = client;
    this.root = options.root;
    this._Replayer = options.Replayer ?? RrwebReplayer;
    // useVirtualDom: rrweb applies "sync" (past) mutations to a virtual DOM that only a
    // fast-forward flushes; a live replay has none, so it would freeze after catch-up.
    this._options = { showWarning: false, useVirtualDom: false, ...(options.replayerOptions ?? {}) };
    this._fit = options.fit === true;
    this._maxLiveDelay = options.maxLiveDelay ?? 1000;
    /** @type {any} */
    this.replayer = null;
    /** @type {'connecting' | 'catching-up' | 'live' | 'resyncing' | 'native' | 'waiting' | 'disconnected'} */
    this.status = client.state === 'joined' ? 'live' : 'connecting';
    /** @type {any} the page on screen: { kind, url, pageId?, title?, offset, ts } */
    this.page = null;
    /** @type {any[]} page timeline, oldest first */
    this.timeline = [...(client.pages ?? [])];
    /** Counters: events dropped as duplicates, or before any keyframe. */
    this.stats = { duplicates: 0, beforeKeyframe: 0, replayers: 0 };
    this._catchingUp = false;
    this._resyncing = false;
    /** @type {number | null} */
    this._lastOffset = null;
    /** @type {any} a Meta waiting for its FullSnapshot */
    this._pendingPage = null;
    /** @type {any[] | null} a new keyframe's events, held until its FullSnapshot */
    this._held = null;
    /** @type {{ width: number, height: number } | null} */
    this._dims = null;
    /** Scale of the replay with `fit` (1: natural size). */
    this.scale = 1;
    this._resizeObserver = null;
    if (this._fit && typeof ResizeObserver !== 'undefined' && this.root) {
      this._resizeObserver = new ResizeObserver(() => this._applyFit());
      this._resizeObserver.observe(this.root);
    }
    /** @type {(() => void)[]} */
    this._offs = [
      client.on('joined', (f) => this._onJoined(f)),
      client.on('resync', (info) => this._onResync(info)),
      client.on('event', (event, meta) => this._onEvent(event, meta?.offset)),
      client.on('caughtUp', () => this._onCaughtUp()),
      client.on('disconnected', (info) => {
        if (info.willReconnect) this._setStatus('disconnected', { willReconnect: true, code: info.code });
      }),
      client.on('closed', (info) => {
        const detail = { willReconnect: false, closed: true, code: info.code, reason: info.reason };
        this._setStatus('disconnected', detail, true);
        this._unsubscribe(); // the last frame stays visible
      }),
    ];
  }

  /** Discards the current replay; the next keyframe starts a new one. */
  reset() {
    this._held = null;
    this._pendingPage = null;
    this._dims = null;
    this.page = null;
    if (this.replayer) {
      const r = this.replayer;
      this.replayer = null;
      destroyQuietly(r);
    }
    if (this.root && 'innerHTML' in this.root) this.root.innerHTML = '';
  }

  /** Stops following the client and destroys the replay. */
  destroy() {
    this._unsubscribe();
    this._resizeObserver?.disconnect();
    this._resizeObserver = null;
    this.reset();
  }

  _unsubscribe() {
    for (const off of this._offs) off();
    this._offs = [];
  }

  /** @param {any} f */
  _onJoined(f) {
    this.timeline = [...(f.pages ?? [])];
    this.emit('timeline', this.timeline);
    if (f.mode !== 'resume') {
      this.reset();
      this._lastOffset = null;
    }
    this._catchingUp = true;
    this._resyncing = f.mode === 'resync';
    this._setStatus(this._resyncing ? 'resyncing' : 'catching-up', { mode: f.mode, reason: f.reason });
  }

  /** @param {{ epoch: string, reason: string, onJoin: boolean }} info */
  _onResync(info) {
    this.reset();
    this._lastOffset = null;
    this._catchingUp = true;
    this._resyncing = true;
    this._setStatus('resyncing', { reason: info.reason });
  }

  _onCaughtUp() {
    this._catchingUp = false;
    this._resyncing = false;
    this._refreshStatus();
  }

  /**
   * @param {any} event
   * @param {number | undefined} offset
   */
  _onEvent(event, offset) {
    if (typeof offset === 'number') {
      if (this._lastOffset !== null && offset <= this._lastOffset) {
        this.stats.duplicates++;
        return;
      }
      this._lastOffset = offset;
    }
    this._trackPage(event, offset);
    this._add(event);
  }

  /** @param {any} event */
  _add(event) {
    const type = event?.type;
    if (this._held) {
      // a new keyframe is being assembled while the old replay stays on screen
      if (type === EVENT_META) this._held = [event];
      else this._held.push(event);
      if (type === EVENT_FULL_SNAPSHOT) {
        const held = this._held;
        this._held = null;
        this._startReplayer(held);
      }
      return;
    }
    if (!this.replayer) {
      if (type === EVENT_META || type === EVENT_FULL_SNAPSHOT) {
        this._startReplayer([event]);
      } else {
        this.stats.beforeKeyframe++;
      }
      return;
    }
    if (type === EVENT_META) {
      this._held = [event];
      return;
    }
    this._keepUp(event);
    this.replayer.addEvent(event);
  }

  /**
   * A new Replayer starting with `events` (a keyframe); the previous one is destroyed after the
   * new one took the events, so the swap shows no blank frame.
   * @param {any[]} events
   */
  _startReplayer(events) {
    const old = this.replayer;
    const replayer = new this._Replayer([], {
      root: this.root,
      liveMode: true,
      ...this._options,
    });
    this.replayer = replayer;
    this.stats.replayers++;
    replayer.on?.('resize', (/** @type {any} */ dims) => {
      if (dims && dims.width > 0 && dims.height > 0) {
        this._dims = { width: dims.width, height: dims.height };
        this._applyFit();
      }
    });
    // Baseline: now, or just after the keyframe if the customer's clock is ahead, so that the
    // keyframe (and any catch-up before now) applies at once and live events as they come.
    let newest = 0;
    for (const e of events) if (typeof e?.timestamp === 'number') newest = Math.max(newest, e.timestamp);
    replayer.startLive(Math.max(Date.now(), newest + 1));
    for (const e of events) replayer.addEvent(e);
    if (old) destroyQuietly(old);
    this.emit('replayer', replayer);
    this._refreshStatus();
  }

  /**
   * Moves the replay clock forward when a live event is due later than `maxLiveDelay` (the
   * customer's clock runs ahead of the agent's), so that live events show when they arrive.
   * Uses rrweb Replayer internals when present; otherwise does nothing.
   * @param {any} event
   */
  _keepUp(event) {
    const r = this.replayer;
    const timer = r?.timer;
    const baseline = r?.service?.state?.context?.baselineTime;
    if (!timer || typeof baseline !== 'number' || typeof event?.timestamp !== 'number') return;
    if (typeof timer.updateLiveTime === 'function') timer.updateLiveTime();
    const due = event.timestamp - baseline;
    if (typeof timer.timeOffset === 'number' && due - timer.timeOffset > this._maxLiveDelay) {
      timer.timeOffset = due;
    }
  }

  _applyFit() {
    if (!this._fit || !this._dims || !this.replayer) return;
    const wrapper = this.replayer.wrapper;
    const root = /** @type {any} */ (this.root);
    if (!wrapper?.style || !root) return;
    const w = root.clientWidth || this._dims.width;
    const h = root.clientHeight || this._dims.height;
    const scale = Math.min(1, w / this._dims.width, h / this._dims.height);
    wrapper.style.transformOrigin = 'top left';
    wrapper.style.transform = scale < 1 ? `scale(${scale})` : '';
    // centred horizontally in the root
    wrapper.style.left = `${Math.max(0, Math.floor((w - this._dims.width * scale) / 2))}px`;
    this.scale = scale;
  }

  /**
   * @param {any} event
   * @param {number | undefined} offset
   */
  _trackPage(event, offset) {
    const type = event?.type;
    if (type === EVENT_META) {
      this._pendingPage = { ...describeHref(event.data?.href), offset, ts: event.timestamp };
      return;
    }
    if (type !== EVENT_FULL_SNAPSHOT) return;
    const base = this._pendingPage ?? { ...(this.page ?? describeHref('')), offset, ts: event.timestamp };
    this._pendingPage = null;
    const page = withPageAlias({ ...base });
    delete page.title;
    const title = snapshotTitle(event);
    if (title !== undefined) page.title = title;
    if (page.offset === undefined) delete page.offset;
    this.page = page;
    this.emit('page', page);
    const last = this.timeline[this.timeline.length - 1];
    const known =
      typeof page.offset === 'number' && this.timeline.some((p) => p.offset === page.offset);
    if (!known && (!last || typeof page.offset !== 'number' || page.offset > last.offset)) {
      this.timeline.push(page);
      if (this.timeline.length > 200) this.timeline.splice(0, this.timeline.length - 200);
      this.emit('timeline', this.timeline);
    }
    this._refreshStatus();
  }

  _refreshStatus() {
    if (this.status === 'disconnected' || this.status === 'connecting') {
      if (!this._catchingUp) return;
    }
    if (this._catchingUp) {
      this._setStatus(this._resyncing ? 'resyncing' : 'catching-up');
      return;
    }
    if (!this.replayer) this._setStatus('waiting');
    else if (this.page?.kind === 'native') this._setStatus('native', { page: this.page });
    else this._setStatus('live');
  }

  /**
   * @param {LiveView['status']} status
   * @param {Record<string, any>} [detail]
   * @param {boolean} [always] emit even if the status stays the same (the detail changed)
   */
  _setStatus(status, detail = {}, always = false) {
    if (status === this.status && !always) return;
    this.status = status;
    this.emit('status', status, detail);
  }
}

/** @param {any} replayer */
function destroyQuietly(replayer) {
  try {
    replayer.destroy?.();
  } catch {
    // ignore
  }
}
