// Types of chat and voice calls (src/chat.js, src/call.js): no rrweb.

import type { Ack, Emitter, Member, RelayClient } from './core.js';

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
  remoteStream: (stream: MediaStream) => void;
  connectionState: (state: RTCPeerConnectionState) => void;
  ended: (info: { call: string | null; reason: string; by: 'local' | 'remote' }) => void;
  error: (info: { code: string; message: string; error?: unknown }) => void;
  /** @deprecated 0.1 name of `remoteStream`. */
  'remote-stream': (stream: MediaStream) => void;
  /** @deprecated 0.1 name of `connectionState`. */
  'connection-state': (state: RTCPeerConnectionState) => void;
}

/** One voice call at a time over the relay's signaling; media peer to peer. */
export class CallManager extends Emitter {
  constructor(client: RelayClient, options?: CallManagerOptions);
  readonly client: RelayClient;
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
