// The console's look back: the rrweb events this console received, kept per page (keyframe), so
// that a click on a page timeline entry shows that page in a paused replay beside the live one,
// with a slider over the page's time and "Back to live".
//
// Only pages this console saw can be shown: the relay trims a room's log at every new keyframe
// (docs/protocol.md §11.3), so the pages from before the agent joined are in the session's
// recording, not here. Memory is bounded (the last MAX_PAGES pages, MAX_EVENTS events).

import { Replayer } from 'rrweb';

const EVENT_FULL_SNAPSHOT = 2;
const EVENT_META = 4;
const MAX_PAGES = 30;
const MAX_EVENTS = 100_000;

/** The events this console received, grouped by keyframe (the offset of its Meta). */
export class PageHistory {
  /** @param {import('@assist-relay/sdk').RelayClient} client */
  constructor(client) {
    /** @type {Map<number, { offset: number, events: any[], snapshot: boolean }>} oldest first */
    this.pages = new Map();
    /** @type {{ offset: number, events: any[], snapshot: boolean } | null} */
    this.current = null;
    this.count = 0;
    /** @type {number | null} */
    this.lastOffset = null;
    this.epoch = null;
    client.on('joined', (f) => {
      if (f.epoch !== this.epoch) this.clear();
      this.epoch = f.epoch;
      if (f.mode !== 'resume') this.lastOffset = null;
    });
    client.on('resync', (info) => {
      if (info.epoch !== this.epoch) this.clear();
      this.epoch = info.epoch;
      this.lastOffset = null;
    });
    client.on('event', (event, meta) => this.add(event, meta?.offset));
  }

  clear() {
    this.pages.clear();
    this.current = null;
    this.count = 0;
    this.lastOffset = null;
  }

  /**
   * @param {any} event
   * @param {number | undefined} offset
   */
  add(event, offset) {
    if (typeof offset !== 'number') return;
    if (this.lastOffset !== null && offset <= this.lastOffset) return;
    this.lastOffset = offset;
    const type = event?.type;
    const startsPage = type === EVENT_META || (type === EVENT_FULL_SNAPSHOT && (!this.current || this.current.snapshot));
    if (startsPage) {
      this.current = { offset, events: [], snapshot: false };
      this.pages.delete(offset); // a resync sends the keyframe again
      this.pages.set(offset, this.current);
    }
    if (!this.current) return; // nothing to replay it on
    if (type === EVENT_FULL_SNAPSHOT) this.current.snapshot = true;
    this.current.events.push(event);
    this.count++;
    this.trim();
  }

  trim() {
    while (this.pages.size > 1 && (this.pages.size > MAX_PAGES || this.count > MAX_EVENTS)) {
      const [first, page] = this.pages.entries().next().value;
      this.pages.delete(first);
      this.count -= page.events.length;
    }
  }

  /** @param {number} offset a timeline entry's offset */
  has(offset) {
    return !!this.pages.get(offset)?.snapshot;
  }

  /** @param {number} offset */
  events(offset) {
    const p = this.pages.get(offset);
    return p?.snapshot ? [...p.events] : null;
  }
}

/**
 * The paused view over the live replay: `show(entry)` replays the entry's page paused at its
 * first moment; the slider moves within the page; `live()` (or #back-to-live) returns.
 */
export class PastView {
  /**
   * @param {{ history: PageHistory, box: HTMLElement, root: HTMLElement, label: HTMLElement,
   *   seek: HTMLInputElement, at: HTMLElement, back: HTMLElement, onChange?: (entry: any) => void,
   *   zoom?: { refresh(): void } | null, time: (ts: number) => string }} o
   */
  constructor(o) {
    this.o = o;
    /** @type {any} */
    this.replayer = null;
    /** @type {any} the timeline entry shown, or null (live) */
    this.entry = null;
    this.start = 0;
    o.back.addEventListener('click', () => this.live());
    o.seek.addEventListener('input', () => this.seekTo(Number(o.seek.value)));
    addEventListener('keydown', (e) => {
      // (not while a dialog is open: Escape closes that one)
      if (e.key === 'Escape' && this.entry && !document.querySelector('dialog[open]')) this.live();
    });
  }

  /** @param {any} entry a page timeline entry (with `offset`) */
  show(entry) {
    const events = typeof entry?.offset === 'number' ? this.o.history.events(entry.offset) : null;
    if (!events) return false;
    this.destroy();
    this.o.root.textContent = '';
    this.replayer = new Replayer(events, {
      root: this.o.root,
      showWarning: false,
      mouseTail: false,
      skipInactive: false,
      triggerFocus: false,
    });
    this.entry = entry;
    this.start = events[0].timestamp;
    const snapshotAt = (events.find((e) => e.type === EVENT_FULL_SNAPSHOT)?.timestamp ?? this.start) - this.start;
    const end = Math.max(snapshotAt, events[events.length - 1].timestamp - this.start);
    const seek = this.o.seek;
    seek.min = String(snapshotAt);
    seek.max = String(end);
    seek.step = '10';
    seek.disabled = end <= snapshotAt;
    this.o.box.hidden = false;
    this.o.box.dataset.offset = String(entry.offset);
    this.o.label.textContent = `${entry.title || (entry.kind === 'native' ? 'Native screen' : 'Untitled page')} · ${entry.url || ''}`;
    this.o.label.title = entry.url || '';
    this.seekTo(snapshotAt);
    this.o.zoom?.refresh();
    this.o.onChange?.(entry);
    return true;
  }

  /** @param {number} t ms since the page's first event */
  seekTo(t) {
    if (!this.replayer) return;
    this.o.seek.value = String(t);
    this.o.box.dataset.at = String(Math.round(t));
    this.o.at.textContent = this.o.time(this.start + t);
    try {
      this.replayer.pause(t);
    } catch (e) {
      console.warn('paused replay', e);
    }
  }

  /** Back to the live replay. */
  live() {
    if (!this.entry) return;
    this.destroy();
    this.entry = null;
    this.o.box.hidden = true;
    delete this.o.box.dataset.offset;
    this.o.onChange?.(null);
  }

  destroy() {
    const r = this.replayer;
    this.replayer = null;
    try {
      r?.destroy?.();
    } catch {
      // ignore
    }
    this.o.root.textContent = '';
  }
}
