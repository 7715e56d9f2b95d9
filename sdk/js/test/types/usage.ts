// The package as a TypeScript user sees it: imports through the package's own `exports` (root and
// subpaths), the README's examples, the camelCase names and the deprecated 0.1 aliases. Checked by
// test/package.test.js (`tsc -p test/types`); nothing here runs.

import {
  RelayClient as RootClient,
  LiveView as RootLiveView,
  startRecording as rootStartRecording,
  ChatPanel as RootChatPanel,
  CallManager as RootCallManager,
} from '@assist-relay/sdk';
import { RelayClient, startRecording, GuideOverlay, type Recording } from '@assist-relay/sdk/record';
import { LiveView, GuideSender, attachGuide, type LivePage, type LiveViewStatus } from '@assist-relay/sdk/replay';
import { ChatPanel, CallManager, CloseCodes, RelayError, type ChatMessage, type JoinedFrame } from '@assist-relay/sdk/chat';

// One class, whichever entry it comes from.
const sameClient: typeof RootClient = RelayClient;
const sameView: typeof RootLiveView = LiveView;
const sameRecording: typeof rootStartRecording = startRecording;
const sameChat: typeof RootChatPanel = ChatPanel;
const sameCalls: typeof RootCallManager = CallManager;
void [sameClient, sameView, sameRecording, sameChat, sameCalls];

declare const fetchToken: () => Promise<string>;
declare const root: HTMLElement;
declare const log: HTMLElement;

async function customer(): Promise<void> {
  const client = new RelayClient({ codec: 'msgpack', reconnect: { maxDelay: 10_000 } });
  client.on('chat', (m: ChatMessage) => console.log(m.from.role, m.text, m.own));
  client.on('closed', (c) => {
    if (c.code === CloseCodes.ROOM_CLOSED) console.log('ended');
  });
  client.on('snapshotRequest', ({ reason }) => console.log(reason));
  const joined: JoinedFrame = await client.connect('wss://relay.example/ws', fetchToken);
  const limit: number = joined.limits.chunkBytes + client.limits.maxFrameBytes;
  const servers: string[] = joined.iceServers.flatMap((s) => s.urls);
  void [limit, servers];
  const recording: Recording = startRecording(client, { maskAllInputs: true });
  await recording.showNativePage({ pageId: 'checkout', title: 'Payment', fields: { step: '2 of 3' } });
  recording.showWebView();
  const ack = await recording.snapshotAcked();
  const offset: number = ack.offset;
  void offset;
  new GuideOverlay(client, { blockClass: 'rr-block' });
  new ChatPanel(client, { log });
  try {
    await client.sendChat('hi');
  } catch (e) {
    if (e instanceof RelayError) console.log(e.code, e.closeCode);
  }
}

async function agent(): Promise<void> {
  const client = new RelayClient();
  const view = new LiveView(client, { root, fit: true });
  view.on('status', (s: LiveViewStatus, detail) => console.log(s, detail.code));
  view.on('page', (p: LivePage) => console.log(p.kind === 'native' ? p.pageId : p.url));
  client.on('memberJoined', (m) => console.log(m.id, m.role));
  client.on('memberLeft', (m) => console.log(m.id));
  client.once('caughtUp', (f) => console.log(f.offset));
  client.on('signal', (s) => console.log(s.sdpMid, s.sdpMLineIndex));
  const guide = new GuideSender(client);
  const detach: () => void = attachGuide(view, guide);
  detach();
  const calls = new CallManager(client);
  calls.on('remoteStream', (stream: MediaStream) => console.log(stream.id));
  calls.on('connectionState', (state) => console.log(state));
  await client.connect('wss://relay.example/ws', 'jwt');
  await client.end();
}

// 0.1 names still type-check (deprecated: editors strike them through).
function deprecatedNames(client: RelayClient, view: LiveView, calls: CallManager): void {
  client.on('member_joined', (m) => console.log(m.id));
  client.on('member_left', (m) => console.log(m.id));
  client.on('caught_up', (f) => console.log(f.offset));
  client.on('snapshot_request', (r) => console.log(r.reason));
  client.on('chunk_ack', (f) => console.log(f.index));
  calls.on('remote-stream', (s) => console.log(s.id));
  calls.on('connection-state', (s) => console.log(s));
  console.log(client.limits.chunk_bytes, view.page?.page_id, client.pages[0]?.page_id);
  void client.reportNativePage({ page_id: 'sheet' });
}

function wrongNames(client: RelayClient, view: LiveView): void {
  // @ts-expect-error not an event of RelayClient
  client.on('memberjoined', () => {});
  // @ts-expect-error the listener's argument is a Member, not a string
  client.on('memberJoined', (m: string) => console.log(m));
  // @ts-expect-error not an event of LiveView
  view.on('caughtUp', () => {});
  // @ts-expect-error deprecated aliases are read-only
  client.limits.chunk_bytes = 1;
}

void [customer, agent, deprecatedNames, wrongNames];
