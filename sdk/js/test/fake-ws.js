// A fake WebSocket for unit tests: records what the client sends, lets the test play the server.
import { decode } from '@msgpack/msgpack';
import { jsonCodec, msgpackCodec } from '../src/codec.js';

export function fakeWebSocket() {
  /** @type {any[]} */
  const sockets = [];
  class FakeWebSocket {
    static CONNECTING = 0;
    static OPEN = 1;
    static CLOSED = 3;
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.binaryType = 'blob';
      /** @type {(string | Uint8Array)[]} */
      this.sent = [];
      this.closedByClient = null;
      sockets.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error('not open');
      this.sent.push(data);
    }
    close(code = 1000, reason = '') {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.closedByClient = { code, reason };
      queueMicrotask(() => this.onclose?.({ code, reason }));
    }
    // ---- test side ----
    /** Completes the handshake. */
    open() {
      this.readyState = 1;
      this.onopen?.({});
    }
    get isMsgpack() {
      return this.protocols?.[0] === msgpackCodec.subprotocol;
    }
    /** Delivers a server frame (encoded with the connection's codec). */
    receive(frame) {
      const data = this.isMsgpack ? msgpackCodec.encode(frame) : jsonCodec.encode(frame);
      // a real browser socket with binaryType 'arraybuffer' hands out an ArrayBuffer
      const payload =
        typeof data === 'string' ? data : data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
      this.onmessage?.({ data: payload });
    }
    /** Closes from the server side (or the network). */
    serverClose(code, reason = '') {
      this.readyState = 3;
      this.onclose?.({ code, reason });
    }
    /** Decoded frames the client sent. */
    frames() {
      return this.sent.map((d) => (typeof d === 'string' ? JSON.parse(d) : decode(d)));
    }
    framesOf(type) {
      return this.frames().filter((f) => f.type === type);
    }
  }
  return { FakeWebSocket, sockets, last: () => sockets[sockets.length - 1] };
}

/** Polls `pred` until true (or fails after `ms`). */
export async function waitFor(pred, ms = 2000, what = 'condition') {
  const t0 = Date.now();
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export const JOINED = (extra = {}) => ({
  type: 'joined',
  epoch: 'E1',
  room: 'room-1',
  you: { id: 'cust-1', role: 'customer' },
  members: [{ id: 'cust-1', role: 'customer' }],
  mode: 'fresh',
  head: 0,
  limits: { max_frame_bytes: 1048576, max_upload_bytes: 67108864, chunk_bytes: 524032 },
  ...extra,
});
