// Type declarations for @assist-relay/sdk (hand-written; the sources are JavaScript with JSDoc).

import type { record as rrwebRecord, Replayer as RrwebReplayer } from 'rrweb';

/** A participant as others see it. */
export interface Member {
  id: string;
  /** `system`: a chat the backend posted (a bot, the IM desk; `from` of a chat only). */
  role: 'customer' | 'agent' | 'system';
}

/** Node size limits from `joined.limits`. */
export interface Limits {
  max_frame_bytes: number;
  max_upload_bytes: number;
  chunk_bytes: number;
}

/** One entry of the page timeline (`joined.pages`). */
export interface PageRecord {
  kind: 'web' | 'native';
  url: string;
  page_id?: string;
  title?: string;
  offset: number;
  ts: number;
}

/** The `joined` frame. */
export interface JoinedFrame {
  type: 'joined';
  room: string;
  epoch: string;
  you: Member;
  members: Member[];
  mode: 'fresh' | 'resume' | 'resync';
  reason?: string;
  head: number;
  pages?: PageRecord[];
  limits?: Limits;
  /** STUN/TURN servers for calls (§19.2). */
  ice_servers?: IceServer[];
  [field: string]: unknown;
}

/** An rrweb event (a JSON object with an integer `type`). */
export interface RrwebEvent {
  type: number;
  [field: string]: unknown;
}

export interface Ack {
  id: string;
  offset: number;
  duplicate: boolean;
}

export interface ChatMessage {
  id: string;
  text: string;
  from: Member;
  ts: number;
  offset: number;
  /** Sent by this participant (any of its connections). */
  own: boolean;
}

export interface NativePage {
  page_id: string;
  title?: string;
  template?: string;
  fields?: Record<string, string>;
}

export interface ErrorInfo {
  /** A protocol error code (§14) or a client-side `client_*` / `token_unavailable` / `connect_failed` / `send_failed`. */
  code: string;
  message?: string;
  id?: string;
  retryable?: boolean;
  error?: unknown;
}

export interface CloseInfo {
  code: number;
  reason: string;
  /** `close()` was called. */
  byClient: boolean;
}

export interface RelayClientEvents {
  joined: (frame: JoinedFrame, info: { reconnected: boolean }) => void;
  event: (event: RrwebEvent, meta: { offset: number; chunked?: boolean }) => void;
  chat: (message: ChatMessage) => void;
  /** A full state follows: reset the view. Also emitted for `joined` with `mode: 'resync'` (`onJoin: true`). */
  resync: (info: { epoch: string; reason: string; onJoin: boolean }) => void;
  caught_up: (frame: { type: 'caught_up'; offset: number }) => void;
  member_joined: (member: Member) => void;
  member_left: (member: Member) => void;
  snapshot_request: (info: { reason: string }) => void;
  ack: (ack: Ack) => void;
  chunk_ack: (frame: { type: 'chunk_ack'; id: string; index: number }) => void;
  error: (info: ErrorInfo) => void;
  /** The socket closed; `willReconnect` says whether the client reconnects. */
  disconnected: (info: { code: number; reason: string; willReconnect: boolean }) => void;
  reconnecting: (info: { attempt: number; delay: number; code: number; reason: string }) => void;
  /** The client stopped for good (close code 4500-4999, or `close()`). */
  closed: (info: CloseInfo) => void;
  /** An unacked event was dropped because the outbox was full. */
  overflow: (info: { id: string }) => void;
  /** Agent guidance (customers, §18); not an entry: `offset` names the entry it follows. */
  guide: (guide: Guidance, meta: { from: Member; offset: number }) => void;
  /** Call signaling from the other role (§19). */
  signal: (signal: Signal, meta: { from: Member }) => void;
  /** A server frame type this SDK does not know. */
  unknown: (frame: Record<string, unknown>) => void;
}

export type TokenSource = string | (() => string | Promise<string>);

export interface RelayClientOptions {
  /** Default `json`. */
  codec?: 'json' | 'msgpack';
  /** WebSocket constructor; default `globalThis.WebSocket` (in Node, e.g. the `ws` package). */
  WebSocket?: any;
  /** Default `subprotocol` (`assist-relay.token.<jwt>`, for browsers); or `query` (`?token=`). */
  tokenTransport?: 'subprotocol' | 'query';
  /** Adds `?room=` to the URL, checked against the token's room. */
  room?: string;
  /** Backoff; default 500 ms doubling to 30 s, ±50 % jitter. `false`: never reconnect. */
  reconnect?: false | { initialDelay?: number; maxDelay?: number; jitter?: number };
  /** App-level ping; default every 20 s, give up after 10 s without any frame. */
  ping?: false | { interval?: number; timeout?: number };
  /** Delay before resending a frame refused with a retryable error; default 1000 ms. */
  retryDelay?: number;
  /** Prefix of generated ids; default random. */
  idPrefix?: string;
  /** Unacked events kept at most; default 10000 (the oldest are dropped, `overflow` emitted). */
  maxQueuedEvents?: number;
  /** Random source for the jitter (tests). */
  random?: () => number;
}

export class Emitter {
  on(name: string, fn: (...args: any[]) => void): () => void;
  once(name: string, fn: (...args: any[]) => void): () => void;
  off(name: string, fn: (...args: any[]) => void): void;
  emit(name: string, ...args: any[]): void;
}

export class RelayError extends Error {
  code: string;
  id?: string;
  closeCode?: number;
}

export declare const CloseCodes: Readonly<{
  SHUTDOWN: 4000;
  SLOW: 4001;
  JOIN_TIMEOUT: 4002;
  IDLE_TIMEOUT: 4003;
  UNAVAILABLE: 4004;
  TOKEN_EXPIRED: 4500;
  POLICY_VIOLATION: 4501;
  ROOM_CLOSED: 4502;
  ROOM_FULL: 4503;
}>;

export declare const RETRYABLE_ERRORS: ReadonlySet<string>;

/** Whether a close code means reconnect (4500 only when the token can be refreshed). */
export declare function shouldReconnect(code: number, canRefreshToken?: boolean): boolean;

export class RelayClient extends Emitter {
  constructor(options?: RelayClientOptions);
  readonly codec: 'json' | 'msgpack';
  state: 'idle' | 'connecting' | 'joining' | 'joined' | 'closed';
  epoch: string | null;
  offset: number | null;
  limits: Limits;
  members: Map<string, Member>;
  you: Member | null;
  room: string | null;
  pages: PageRecord[];
  /** STUN/TURN servers from the last `joined` (§19.2). */
  iceServers: IceServer[];
  readonly pendingEvents: number;
  readonly pendingChats: number;

  on<K extends keyof RelayClientEvents>(name: K, fn: RelayClientEvents[K]): () => void;
  once<K extends keyof RelayClientEvents>(name: K, fn: RelayClientEvents[K]): () => void;
  off<K extends keyof RelayClientEvents>(name: K, fn: RelayClientEvents[K]): void;

  /** Connects and joins; resolves with the first `joined`. A token function is called per attempt. */
  connect(url: string, token: TokenSource): Promise<JoinedFrame>;
  /** Stops for good; pending promises reject with `RelayError('closed')`. */
  close(): void;
  /** Resolves on `ack`; resent with the same id after reconnects until acked. */
  sendChat(text: string, opts?: { id?: string }): Promise<Ack>;
  /** Customers: publish an rrweb event (queued, idempotent, chunk-uploaded when large). */
  publish(event: RrwebEvent | RawEvent, opts?: { id?: string }): Promise<Ack>;
  /** Customers: the app shows a native screen. */
  reportNativePage(page: NativePage, opts?: { id?: string }): Promise<Ack>;
  /** Agents: end the session; resolves on close 4502. */
  end(): Promise<void>;
  /** Agents with `guide`: send guidance now (not queued); whether it went to the socket. */
  sendGuide(guide: Guidance, opts?: { id?: string }): boolean;
  /** Call signaling to `to`, or to every participant of the other role. */
  sendSignal(signal: Signal, to?: string): boolean;
}

/** The JSON text of an rrweb event, serialized once. */
export class RawEvent {
  constructor(json: string);
  readonly json: string;
  readonly bytes: Uint8Array;
}

export interface Codec {
  name: 'json' | 'msgpack';
  subprotocol: string;
  encode(frame: Record<string, unknown>): string | Uint8Array;
  decode(data: unknown): Record<string, any>;
}

export declare const jsonCodec: Codec;
export declare const msgpackCodec: Codec;
export declare function getCodec(codec: 'json' | 'msgpack' | Codec): Codec;
export declare function sliceUtf8(bytes: Uint8Array, maxBytes: number): Uint8Array[];
export declare function sha256Digest(bytes: Uint8Array): Promise<string>;
export declare const JSON_SUBPROTOCOL: 'assist-relay.v1.json';
export declare const MSGPACK_SUBPROTOCOL: 'assist-relay.v1.msgpack';
export declare const TOKEN_SUBPROTOCOL_PREFIX: 'assist-relay.token.';

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

/** Customers: record with rrweb and publish; answers `snapshot_request`; stops on close. */
export declare function startRecording(client: RelayClient, options?: RecordingOptions): Recording;

/** `connecting`, `catching-up` (after `joined`, until `caught_up`), `live`, `resyncing`, `native` (a native-page placeholder is on screen), `waiting` (caught up, no keyframe yet), `disconnected`. */
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
  page_id?: string;
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
export declare function describeHref(href: string): { kind: 'web' | 'native'; url: string; page_id?: string };

export interface ChatPanelOptions {
  /** Where messages go: one `.chat-msg` element each (`data-from`, `data-role`, `data-id`; classes `own`, `pending`, `failed`). */
  log: HTMLElement;
  input?: HTMLInputElement | HTMLTextAreaElement | null;
  send?: HTMLElement | null;
  document?: Document;
  /** Default: `You`, else the sender's id (with its role unless the id contains it). */
  label?: (from: Member, own: boolean) => string;
  formatTime?: (ts: number) => string;
}

/** A small chat UI over a client: renders messages as text, sends from an input (Enter or the button). */
export class ChatPanel {
  constructor(client: RelayClient, options: ChatPanelOptions);
  readonly client: RelayClient;
  /** Sends the input's trimmed text (nothing when empty) and clears it. */
  sendInput(): Promise<Ack> | null;
  /** Sends a message; shown at once as pending. */
  send(text: string): Promise<Ack>;
  clear(): void;
  destroy(): void;
}

// ---- Agent guidance (§18) and voice calls (§19): src/guide.js, src/call.js ----

export type Guidance =
  | { kind: 'pointer'; x: number; y: number; node?: number }
  | { kind: 'highlight'; node: number }
  | { kind: 'annotate'; node: number; text: string }
  | { kind: 'clear' };

export interface Signal {
  kind: 'offer' | 'answer' | 'ice' | 'hangup';
  call: string;
  sdp?: string;
  candidate?: string;
  sdp_mid?: string;
  sdp_mline_index?: number;
  reason?: string;
}

export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

export declare const POINTER_INTERVAL: number;
export declare const MAX_ANNOTATION_BYTES: number;

/** Agent side: throttled pointer, highlight, bubbles, clear; re-sent when a customer joins. */
export class GuideSender {
  constructor(client: RelayClient, options?: { pointerInterval?: number });
  readonly client: RelayClient;
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

export interface GuideOverlayOptions {
  document?: Document;
  window?: Window;
  /** The recorder's mirror; default rrweb's `record.mirror`. */
  mirror?: { getNode(id: number): Node | null };
  /** The class your rrweb `record` blocks; default `rr-block`. */
  blockClass?: string;
  /** An idle pointer disappears after this long (ms); default 5000. */
  pointerTimeout?: number;
}

/** Customer side: draws guidance over the page, unrecorded (rrweb block class), `pointer-events: none`. */
export class GuideOverlay {
  constructor(client: RelayClient, options?: GuideOverlayOptions);
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

export type CallState = 'idle' | 'calling' | 'ringing' | 'connecting' | 'connected' | 'ended';
export declare const CallStates: readonly CallState[];

export interface CallManagerOptions {
  /** Asked on an incoming offer, before any microphone access; resolve true to answer. Without it calls are declined. */
  consent?: (offer: { call: string; from: Member }) => boolean | Promise<boolean>;
  RTCPeerConnection?: any;
  getUserMedia?: (constraints: MediaStreamConstraints) => Promise<MediaStream>;
  /** Default `{ audio: true, video: false }`. */
  constraints?: MediaStreamConstraints;
  /** Merged into the RTCPeerConnection configuration (after `iceServers` from `joined`). */
  rtcConfig?: Record<string, any>;
  /** Plays the remote stream. */
  audioElement?: HTMLAudioElement;
}

export interface CallManagerEvents {
  state: (state: CallState, detail: { call: string | null; reason?: string; by?: 'local' | 'remote'; from?: Member }) => void;
  incoming: (info: { call: string; from: Member }) => void;
  'remote-stream': (stream: MediaStream) => void;
  'connection-state': (state: string) => void;
  ended: (info: { call: string | null; reason: string; by: 'local' | 'remote' }) => void;
  error: (info: { code: string; message: string; error?: unknown }) => void;
}

/** One voice call at a time over the relay's signaling; media peer to peer. */
export class CallManager extends Emitter {
  constructor(client: RelayClient, options?: CallManagerOptions);
  state: CallState;
  call: string | null;
  peer: Member | null;
  pc: RTCPeerConnection | null;
  localStream: MediaStream | null;
  remoteStream: MediaStream | null;
  on<K extends keyof CallManagerEvents>(name: K, fn: CallManagerEvents[K]): () => void;
  once<K extends keyof CallManagerEvents>(name: K, fn: CallManagerEvents[K]): () => void;
  off<K extends keyof CallManagerEvents>(name: K, fn: CallManagerEvents[K]): void;
  /** Calls `to` (default: the only participant of the other role). */
  start(to?: string): Promise<void>;
  hangup(reason?: string): void;
  destroy(): void;
}
