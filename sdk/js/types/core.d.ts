// Types of the client core (src/core.js), exported by every entry point. Hand-written; checked
// against the code by `npm test` (test/types/implements.ts, test/package.test.js).

/** A participant as others see it. */
export interface Member {
  id: string;
  /** `system`: a chat the backend posted (a bot, the IM desk; `from` of a chat only). */
  role: 'customer' | 'agent' | 'system';
}

/** Node size limits from `joined.limits`. */
export interface Limits {
  maxFrameBytes: number;
  maxUploadBytes: number;
  chunkBytes: number;
  /** @deprecated 0.1 name of `maxFrameBytes`. */
  readonly max_frame_bytes?: number;
  /** @deprecated 0.1 name of `maxUploadBytes`. */
  readonly max_upload_bytes?: number;
  /** @deprecated 0.1 name of `chunkBytes`. */
  readonly chunk_bytes?: number;
}

/** One entry of the page timeline (`joined.pages`). */
export interface PageRecord {
  kind: 'web' | 'native';
  url: string;
  /** Native screens: the app's screen id. */
  pageId?: string;
  /** @deprecated 0.1 name of `pageId`. */
  readonly page_id?: string;
  title?: string;
  offset: number;
  ts: number;
}

/** The `joined` frame, fields in camelCase. */
export interface JoinedFrame {
  type: 'joined';
  room: string;
  epoch: string;
  you: Member;
  members: Member[];
  mode: 'fresh' | 'resume' | 'resync';
  reason?: string;
  head: number;
  pages: PageRecord[];
  limits: Limits;
  /** STUN/TURN servers for calls (§19.2); `[]` when the relay names none. */
  iceServers: IceServer[];
  /** @deprecated 0.1 name of `iceServers`. */
  readonly ice_servers?: IceServer[];
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

/** A native screen of a hybrid app (§11.1). */
export interface NativePage {
  pageId?: string;
  /** @deprecated 0.1 name of `pageId` (accepted). */
  page_id?: string;
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

export interface CaughtUpFrame {
  type: 'caught_up';
  offset: number;
}

export interface ChunkAckFrame {
  type: 'chunk_ack';
  id: string;
  index: number;
}

export interface RelayClientEvents {
  joined: (frame: JoinedFrame, info: { reconnected: boolean }) => void;
  event: (event: RrwebEvent, meta: { offset: number; chunked?: boolean }) => void;
  chat: (message: ChatMessage) => void;
  /** A full state follows: reset the view. Also emitted for `joined` with `mode: 'resync'` (`onJoin: true`). */
  resync: (info: { epoch: string; reason: string; onJoin: boolean }) => void;
  caughtUp: (frame: CaughtUpFrame) => void;
  memberJoined: (member: Member) => void;
  memberLeft: (member: Member) => void;
  snapshotRequest: (info: { reason: string }) => void;
  ack: (ack: Ack) => void;
  chunkAck: (frame: ChunkAckFrame) => void;
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
  /** A server frame type this SDK does not know (as on the wire). */
  unknown: (frame: Record<string, unknown>) => void;

  /** @deprecated 0.1 name of `caughtUp`. */
  caught_up: (frame: CaughtUpFrame) => void;
  /** @deprecated 0.1 name of `memberJoined`. */
  member_joined: (member: Member) => void;
  /** @deprecated 0.1 name of `memberLeft`. */
  member_left: (member: Member) => void;
  /** @deprecated 0.1 name of `snapshotRequest`. */
  snapshot_request: (info: { reason: string }) => void;
  /** @deprecated 0.1 name of `chunkAck`. */
  chunk_ack: (frame: ChunkAckFrame) => void;
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

/** A tiny event emitter; `on()` returns an unsubscribe function. */
export class Emitter {
  constructor(aliases?: Readonly<Record<string, string>>);
  on(name: string, fn: (...args: any[]) => void): () => void;
  once(name: string, fn: (...args: any[]) => void): () => void;
  off(name: string, fn: (...args: any[]) => void): void;
  emit(name: string, ...args: any[]): void;
}

/** An error that settles a pending promise of the client. */
export class RelayError extends Error {
  constructor(code: string, message: string, extra?: { id?: string; closeCode?: number });
  /** An error code of §14, or `closed` / `queue_overflow` / `too_large`. */
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
  TOO_MANY_CONNECTIONS_FOR_PARTICIPANT: 4504;
}>;

/** Error codes after which resending the same frame (same id) is safe (§14). */
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

// ---- Guidance (§18) and call signaling (§19) as the client sends and receives them ----

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
  /** As in RTCIceCandidateInit. */
  sdpMid?: string;
  /** As in RTCIceCandidateInit. */
  sdpMLineIndex?: number;
  /** @deprecated 0.1 name of `sdpMid`. */
  sdp_mid?: string;
  /** @deprecated 0.1 name of `sdpMLineIndex`. */
  sdp_mline_index?: number;
  reason?: string;
}

export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}
