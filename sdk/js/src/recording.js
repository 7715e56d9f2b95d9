// Recording for customers: rrweb's recorder publishing through a RelayClient. (Live replay for
// agents is live-view.js: a customer page's bundle has no replayer.)

import { record as rrwebRecord } from 'rrweb';

const EVENT_FULL_SNAPSHOT = 2;

/**
 * Records the page with rrweb and publishes every event through `client` (customers).
 *
 * - Full snapshots every `checkoutEveryNms` (default 5 minutes), so that agents joining later
 *   replay a short tail.
 * - Answers `snapshot_request` with a full snapshot (§11.2).
 * - After events were dropped from a full outbox (long disconnection), and after a join in mode
 *   `resync` (the room's log may have been recreated), takes a full snapshot on the join, giving
 *   agents a fresh keyframe.
 * - Hybrid apps: `showNativePage(page)` pauses recording and reports the native screen (§11.1);
 *   `showWebView()` resumes it, which starts with a fresh Meta + FullSnapshot.
 * - Stops recording when the client closes for good (e.g. 4502 room_closed).
 *
 * @param {import('../types/core.js').RelayClient} client
 * @param {Record<string, any> & { record?: any }} [options] rrweb `record` options (`emit` is
 *   set by the helper; an `emit` given here is called as well). `record` injects another rrweb
 *   `record` function (tests, or a different rrweb build).
 */
export function startRecording(client, options = {}) {
  const { record = rrwebRecord, emit: userEmit, ...rrwebOptions } = options;
  let overflowed = false;
  let stopped = false;
  let paused = false;
  /** @type {null | (() => void)} */
  let stopRecord = null;
  /** @type {Promise<any> | null} ack of the latest FullSnapshot */
  let lastSnapshot = null;
  /** @type {((p: Promise<any>) => void)[]} */
  let snapshotWaiters = [];

  const start = () => {
    stopRecord =
      record({
        checkoutEveryNms: 5 * 60 * 1000,
        ...rrwebOptions,
        emit(/** @type {any} */ event, /** @type {boolean | undefined} */ isCheckout) {
          const published = client.publish(event);
          published.catch(() => {
            // errors are reported on the client's 'error' event
          });
          if (event?.type === EVENT_FULL_SNAPSHOT) {
            lastSnapshot = published;
            const waiters = snapshotWaiters;
            snapshotWaiters = [];
            for (const w of waiters) w(published);
          }
          userEmit?.(event, isCheckout);
        },
      }) ?? null;
  };

  const takeFullSnapshot = () => {
    if (!stopped && !paused) record.takeFullSnapshot(true);
  };
  const pause = () => {
    if (stopped || paused) return;
    paused = true;
    const s = stopRecord;
    stopRecord = null;
    s?.();
  };
  const resume = () => {
    if (stopped || !paused) return;
    paused = false;
    start(); // rrweb starts every recording with Meta + FullSnapshot
  };

  start();
  const offs = [
    client.on('snapshotRequest', takeFullSnapshot),
    client.on('overflow', () => {
      overflowed = true;
    }),
    client.on('joined', (f) => {
      // After a resync the room's log may have been recreated (epoch_changed, ahead_of_log):
      // its keyframe is gone, and agents need a new one.
      if (overflowed || f?.mode === 'resync') {
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
    const s = stopRecord;
    stopRecord = null;
    s?.();
    const err = new Error('recording stopped');
    for (const w of snapshotWaiters) w(Promise.reject(err));
    snapshotWaiters = [];
  }
  return {
    stop,
    takeFullSnapshot,
    pause,
    resume,
    /** Whether recording is paused (`pause()` or a native screen). */
    get paused() {
      return paused;
    },
    /**
     * Pauses recording (nothing of the web view is sent while a native screen shows) and reports
     * the native screen; resolves with its `ack`.
     * @param {import('../types/core.js').NativePage} page
     * @param {{ id?: string }} [opts]
     */
    showNativePage(page, opts) {
      pause();
      return client.reportNativePage(page, opts);
    },
    /** Back to the web view: resumes recording (a fresh Meta + FullSnapshot), or takes a full snapshot. */
    showWebView() {
      if (paused) resume();
      else takeFullSnapshot();
    },
    /**
     * The `ack` of the latest FullSnapshot published (waiting for the first one if none was
     * taken yet): once it resolves, agents can replay the page.
     * @returns {Promise<any>}
     */
    snapshotAcked() {
      if (lastSnapshot) return lastSnapshot;
      if (stopped) return Promise.reject(new Error('recording stopped'));
      return new Promise((resolve) => snapshotWaiters.push(resolve)).then((p) => p);
    },
  };
}
