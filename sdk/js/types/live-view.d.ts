// Types of the agent side (src/live-view.js, src/guide.js).

import type { Replayer as RrwebReplayer } from 'rrweb';
import type { Emitter, PageRecord, RelayClient, RrwebEvent } from './core.js';

/** `connecting`, `catching-up` (after `joined`, until `caughtUp`), `live`, `resyncing`, `native` (a native-page placeholder is on screen), `waiting` (caught up, no keyframe yet), `disconnected`. */
export type LiveViewStatus =
  | 'connecting'
  | 'catching-up'
  | 'live'
  | 'resyncing'
  | 'native'
  | 'waiting'
  | 'disconnected';

/** The page a LiveView shows, and the entries it adds to the timeline. */
export interface LivePage {
  kind: 'web' | 'native';
  url: string;
  /** Native screens: the app's screen id. */
  pageId?: string;
  /** @deprecated 0.1 name of `pageId`. */
  readonly page_id?: string;
  title?: string;
  /** Offset of the page's Meta event. */
  offset?: number;
  /** The Meta event's timestamp (the customer's clock), ms. */
  ts?: number;
}

export interface LiveViewOptions {
  root: Element;
  /** Another rrweb Replayer class (tests, other builds). */
  Replayer?: typeof RrwebReplayer | any;
  /** Passed to the Replayer (`liveMode` is always on; defaults `showWarning: false`, `useVirtualDom: false`). */
  replayerOptions?: Record<string, unknown>;
  /** Scale the replay down to fit the root (and centre it horizontally). */
  fit?: boolean;
  /** A live event due later than this (ms) on the replay clock moves the clock forward; default 1000. */
  maxLiveDelay?: number;
}

export interface LiveViewEvents {
  status: (status: LiveViewStatus, detail: { mode?: string; reason?: string; willReconnect?: boolean; closed?: boolean; code?: number; page?: LivePage }) => void;
  /** A keyframe's FullSnapshot was applied: the page on screen. */
  page: (page: LivePage) => void;
  /** The page timeline changed (`joined.pages`, then keyframes seen live). */
  timeline: (timeline: Array<PageRecord | LivePage>) => void;
  /** A new Replayer took over (first keyframe, a new keyframe, after a reset). */
  replayer: (replayer: RrwebReplayer) => void;
}

/** Agents: live replay with an rrweb Replayer: catch-up, resync, keyframe swaps, native placeholders, status, timeline. */
export class LiveView extends Emitter {
  constructor(client: RelayClient, options: LiveViewOptions);
  readonly client: RelayClient;
  /** The element the replay is drawn in (`options.root`). */
  readonly root: Element;
  replayer: RrwebReplayer | null;
  status: LiveViewStatus;
  page: LivePage | null;
  timeline: Array<PageRecord | LivePage>;
  /** Scale applied with `fit`. */
  scale: number;
  stats: { duplicates: number; beforeKeyframe: number; replayers: number };
  on<K extends keyof LiveViewEvents>(name: K, fn: LiveViewEvents[K]): () => void;
  once<K extends keyof LiveViewEvents>(name: K, fn: LiveViewEvents[K]): () => void;
  off<K extends keyof LiveViewEvents>(name: K, fn: LiveViewEvents[K]): void;
  /** Discards the replay; the next keyframe starts a new one. */
  reset(): void;
  /** Stops following the client and destroys the replay. */
  destroy(): void;
}

/** The text of the first `<title>` of an rrweb FullSnapshot. */
export declare function snapshotTitle(event: RrwebEvent): string | undefined;
/** `native://ID` hrefs are native screens (§11.1). */
export declare function describeHref(href: string): { kind: 'web' | 'native'; url: string; pageId?: string; readonly page_id?: string };

export declare const POINTER_INTERVAL: number;
export declare const MAX_ANNOTATION_BYTES: number;

/** Agent side: throttled pointer, highlight, bubbles, clear; re-sent when a customer joins. */
export class GuideSender {
  constructor(client: RelayClient, options?: { pointerInterval?: number });
  readonly client: RelayClient;
  pointerInterval: number;
  highlighted: number | null;
  annotations: Map<number, string>;
  /** Page coordinates of the replayed document (CSS px), and the node under the pointer. */
  pointer(x: number, y: number, node?: number): void;
  highlight(node: number): boolean;
  annotate(node: number, text: string): boolean;
  clear(): boolean;
  resend(): void;
  destroy(): void;
}

/** Page coordinates and rrweb node id under a mouse event over a Replayer's iframe. */
export declare function replayPoint(replayer: any, e: { clientX: number; clientY: number }): { x: number; y: number; node?: number } | null;

/** Mouse over the LiveView's replay sends the pointer; a click highlights. Returns a detach function. */
export declare function attachGuide(liveView: LiveView, sender: GuideSender, options?: { pointer?: boolean; click?: boolean }): () => void;

