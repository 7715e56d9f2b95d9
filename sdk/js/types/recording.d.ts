// Types of the customer side (src/recording.js, src/guide-overlay.js).

import type { record as rrwebRecord } from 'rrweb';
import type { Ack, Guidance, NativePage, RelayClient } from './core.js';

export interface RecordingOptions {
  /** Another rrweb `record` (tests, other builds). */
  record?: typeof rrwebRecord;
  /** Called as well as publishing. */
  emit?: (event: any, isCheckout?: boolean) => void;
  /** Default 5 minutes. */
  checkoutEveryNms?: number;
  [rrwebOption: string]: unknown;
}

/** What `startRecording` returns. */
export interface Recording {
  /** Stops recording for good. */
  stop(): void;
  /** A new Meta + FullSnapshot (nothing while paused). */
  takeFullSnapshot(): void;
  /** Stops the rrweb recorder until `resume()`; nothing of the page is sent meanwhile. */
  pause(): void;
  /** Restarts the rrweb recorder, which begins with a fresh Meta + FullSnapshot. */
  resume(): void;
  readonly paused: boolean;
  /** Hybrid apps: pauses recording and reports the native screen (§11.1); resolves on its `ack`. */
  showNativePage(page: NativePage, opts?: { id?: string }): Promise<Ack>;
  /** Back to the web view: resumes recording (or takes a full snapshot if not paused). */
  showWebView(): void;
  /** The `ack` of the latest FullSnapshot published (waits for the first one). */
  snapshotAcked(): Promise<Ack>;
}

/** Customers: record with rrweb and publish; answers `snapshotRequest`; stops on close. */
export declare function startRecording(client: RelayClient, options?: RecordingOptions): Recording;

export interface GuideOverlayOptions {
  document?: Document;
  window?: Window;
  /** The recorder's mirror; default rrweb's `record.mirror`. */
  mirror?: { getNode(id: number): Node | null };
  /** The class your rrweb `record` blocks; default `rr-block`. */
  blockClass?: string;
  /** An idle pointer disappears after this long (ms); default 5000. */
  pointerTimeout?: number;
  /** A highlight shades the page outside its element (`'outside'`, the default) or not (`'none'`). */
  dim?: 'outside' | 'none';
  /** Elements a highlight never shades (the chat panel, say); an array or a function giving one. */
  keep?: Element[] | (() => Element[]);
}

/** Customer side: draws guidance over the page, unrecorded (rrweb block class), `pointer-events: none`. */
export class GuideOverlay {
  constructor(client: RelayClient, options?: GuideOverlayOptions);
  readonly client: RelayClient;
  readonly host: HTMLElement | null;
  pointer: { x: number; y: number } | null;
  highlighted: number | null;
  annotations: Map<number, string>;
  readonly visible: boolean;
  apply(guide: Guidance): void;
  clear(): void;
  element(node: number): Element | null;
  render(): void;
  destroy(): void;
}
