// rrweb helpers: recording for customers, live replay for agents.

import { record as rrwebRecord, Replayer as RrwebReplayer } from 'rrweb';

/**
 * Records the page with rrweb and publishes every event through `client` (customers).
 *
 * - Full snapshots every `checkoutEveryNms` (default 5 minutes), so that agents joining later
 *   replay a short tail.
 * - Answers `snapshot_request` with a full snapshot (§11.2).
 * - After events were dropped from a full outbox (long disconnection), takes a full snapshot on
 *   the next join, giving agents a fresh keyframe.
 * - Stops recording when the client closes for good (e.g. 4502 room_closed).
 *
 * @param {import('./client.js').RelayClient} client
 * @param {Record<string, any> & { record?: any }} [options] rrweb `record` options (`emit` is
 *   set by the helper; an `emit` given here is called as well). `record` injects another rrweb
 *   `record` function (tests, or a different rrweb build).
 * @returns {{ stop: () => void, takeFullSnapshot: () => void }}
 */
export function startRecording(client, options = {}) {
  const { record = rrwebRecord, emit: userEmit, ...rrwebOptions } = options;
  let overflowed = false;
  let stopped = false;
  const stopRecord = record({
    checkoutEveryNms: 5 * 60 * 1000,
    ...rrwebOptions,
    emit(event, isCheckout) {
      client.publish(event).catch(() => {
        // errors are reported on the client's 'error' event
      });
      userEmit?.(event, isCheckout);
    },
  });
  const takeFullSnapshot = () => {
    if (!stopped) record.takeFullSnapshot(true);
  };
  const offs = [
    client.on('snapshot_request', takeFullSnapshot),
    client.on('overflow', () => {
      overflowed = true;
    }),
    client.on('joined', () => {
      if (overflowed) {
        overflowed = false;
        takeFullSnapshot();
      }
    }),
    client.on('closed', () => stop()),
  ];
  function stop() {
    if (stopped) return;
    stopped = true;
    for (const off of offs) off();
    stopRecord?.();
  }
  return { stop, takeFullSnapshot };
}

/**
 * Replays a customer's page live for an agent: feeds the client's events into an rrweb
 * `Replayer` in live mode, and starts a new one whenever the relay delivers a full state (a fresh
 * join, a resync on join or during the session).
 */
export class LiveView {
  /**
   * @param {import('./client.js').RelayClient} client
   * @param {{ root: Element, Replayer?: any, replayerOptions?: Record<string, any> }} options
   *   `Replayer` injects another rrweb Replayer class.
   */
  constructor(client, options) {
    this.client = client;
    this.root = options.root;
    this._Replayer = options.Replayer ?? RrwebReplayer;
    this._options = options.replayerOptions ?? {};
    /** @type {any} */
    this.replayer = null;
    /** @type {(() => void)[]} */
    this._offs = [
      client.on('joined', (f) => {
        if (f.mode === 'fresh') this.reset();
      }),
      client.on('resync', () => this.reset()),
      client.on('event', (event) => this._add(event)),
      client.on('closed', () => this.destroy()),
    ];
  }

  /** Discards the current replay; the next events start a new one. */
  reset() {
    if (this.replayer) {
      try {
        this.replayer.destroy?.();
      } catch {
        // ignore
      }
      this.replayer = null;
    }
    if (this.root && 'innerHTML' in this.root) this.root.innerHTML = '';
  }

  /** @param {any} event */
  _add(event) {
    if (!this.replayer) {
      this.replayer = new this._Replayer([], {
        root: this.root,
        liveMode: true,
        ...this._options,
      });
      // Baseline "now": catch-up events (older) apply at once, live ones as they come.
      this.replayer.startLive();
    }
    this.replayer.addEvent(event);
  }

  /** Stops following the client and destroys the replay. */
  destroy() {
    for (const off of this._offs) off();
    this._offs = [];
    this.reset();
  }
}
