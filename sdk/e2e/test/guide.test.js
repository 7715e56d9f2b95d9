// End-to-end: agent guidance and a voice call in Chromium, over two relay nodes in cluster mode
// (one Redis) behind nginx. The customer page is pinned to node 1 and the agent console to node
// 2, so guidance and call signaling cross Redis. The pages are small test pages built from the
// SDK (sdk/js, bundled with sdk/demo's esbuild) and served to Chromium by request interception on
// nginx's loopback origin (a secure context, as getUserMedia needs).
//
// - highlight: the agent reads the rrweb node id of a button in its replay and highlights it; the
//   customer page shows the box around the real button; the overlay takes no clicks, and the
//   agent's replay shows the overlay host empty (rrweb never recorded what is drawn in it).
// - call: fake microphones (--use-fake-device-for-media-stream --use-fake-ui-for-media-stream);
//   the agent calls, the customer's consent callback answers, both report `connected` and audio
//   packets flowing (getStats inbound-rtp), then the agent hangs up.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { startCluster, waitFor, tempDir, capture, ROOT, CHROMIUM } from '../harness.js';

// Served from nginx's origin (the requests never reach it): a loopback page in a secure context,
// so that neither getUserMedia nor Chromium's local network access checks stand in the way.
const PREFIX = '/guide-e2e';
const origin = () => `${cluster.base}${PREFIX}`;
let cluster;
let browser;
let sdkBundle;

/** The SDK as one browser script (`window.AssistRelay`), bundled with sdk/demo's esbuild. */
async function bundleSdk() {
  const demo = path.join(ROOT, 'sdk/demo');
  const load = () => createRequire(path.join(demo, 'package.json'))('esbuild');
  let esbuild;
  try {
    esbuild = load();
  } catch {
    execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: demo, stdio: 'ignore', timeout: 240_000 });
    esbuild = load();
  }
  const dir = tempDir('assist-guide-e2e-');
  const entry = path.join(dir, 'entry.js');
  fs.writeFileSync(entry, `export * from ${JSON.stringify(path.join(ROOT, 'sdk/js/src/index.js'))};\n`);
  const outfile = path.join(dir, 'sdk.js');
  await esbuild.build({ entryPoints: [entry], bundle: true, format: 'iife', globalName: 'AssistRelay', platform: 'browser', outfile, logLevel: 'silent' });
  return fs.readFileSync(outfile, 'utf8');
}

const CUSTOMER_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>Orders</title>
<style>body{font:16px sans-serif;margin:0;padding:40px} #export{margin:260px 0 0 180px;padding:10px 24px;font-size:18px}</style>
</head><body>
<h1>Orders</h1><p>Three orders are waiting.</p>
<button id="export" onclick="window.clicks = (window.clicks || 0) + 1">Export</button>
<audio id="remote" autoplay></audio>
<script src="sdk.js"></script>
<script>
  const A = window.AssistRelay;
  const q = new URLSearchParams(location.search);
  const client = new A.RelayClient({ codec: 'json', room: q.get('room'), ping: false });
  window.client = client;
  window.overlay = new A.GuideOverlay(client);
  window.calls = new A.CallManager(client, {
    audioElement: document.getElementById('remote'),
    consent: async (offer) => { window.asked = offer; return true; },
  });
  client.connect(q.get('ws'), q.get('token')).then(() => {
    window.recording = A.startRecording(client);
    window.ready = true;
  });
</script></body></html>`;

const AGENT_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>Agent</title></head><body style="margin:0">
<div id="replay" style="position:relative;width:1280px;height:800px"></div>
<audio id="remote" autoplay></audio>
<script src="sdk.js"></script>
<script>
  const A = window.AssistRelay;
  const q = new URLSearchParams(location.search);
  const client = new A.RelayClient({ codec: 'msgpack', room: q.get('room'), ping: false });
  window.client = client;
  window.live = new A.LiveView(client, { root: document.getElementById('replay') });
  window.guide = new A.GuideSender(client);
  window.calls = new A.CallManager(client, { audioElement: document.getElementById('remote') });
  window.replayDoc = () => window.live.replayer?.iframe?.contentDocument ?? null;
  window.replayNodeId = (sel) => {
    const el = window.replayDoc()?.querySelector(sel);
    return el ? window.live.replayer.getMirror().getId(el) : -1;
  };
  client.connect(q.get('ws'), q.get('token')).then(() => { window.ready = true; });
</script></body></html>`;

function token(room, role, sub) {
  return cluster.token({ room, role, sub });
}

/** Opens a test page as `role` on node `node`; returns { page, cap }. */
async function open(context, file, room, role, sub, node) {
  const page = await context.newPage();
  const cap = capture(page, `${role} ${sub}`);
  const q = new URLSearchParams({ room, ws: cluster.wsUrl(node), token: token(room, role, sub) });
  await page.goto(`${origin()}/${file}?${q}`);
  await waitFor(() => page.evaluate(() => window.ready === true), { timeout: 15000, message: `${sub} to join`, describe: () => cap.dump() });
  return { page, cap };
}

async function newContext() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  await context.route(`${origin()}/**`, (route) => {
    const url = new URL(route.request().url());
    const file = url.pathname.slice(PREFIX.length);
    const body = { '/sdk.js': sdkBundle, '/customer.html': CUSTOMER_HTML, '/agent.html': AGENT_HTML }[file];
    if (body === undefined) return route.fulfill({ status: 404, body: 'not found' });
    const type = url.pathname.endsWith('.js') ? 'text/javascript' : 'text/html';
    return route.fulfill({ status: 200, contentType: `${type}; charset=utf-8`, body });
  });
  return context;
}

/** Audio packets received on the page's call (inbound-rtp), or 0. */
function audioPacketsReceived(page) {
  return page.evaluate(async () => {
    const pc = window.calls.pc;
    if (!pc) return 0;
    let n = 0;
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'audio') n += r.packetsReceived ?? 0;
    });
    return n;
  });
}

describe('agent guidance and voice calls in Chromium (2 nodes + nginx + Redis)', { timeout: 150_000 }, () => {
  before(async () => {
    const { chromium } = await import('playwright-core');
    if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found (apt-get install -y chromium)`);
    [cluster, browser, sdkBundle] = await Promise.all([
      startCluster({ nodes: 2, demo: false }),
      chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--no-sandbox',
          '--disable-dev-shm-usage',
          '--disable-gpu',
          '--use-fake-device-for-media-stream',
          '--use-fake-ui-for-media-stream',
          '--autoplay-policy=no-user-gesture-required',
          '--disable-features=LocalNetworkAccessChecks,WebRtcHideLocalIpsWithMdns',
        ],
        timeout: 30000,
      }),
      bundleSdk(),
    ]);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await cluster?.stop();
  });

  test('the agent highlights a button and the customer page shows the box on it', { timeout: 60_000 }, async () => {
    const context = await newContext();
    const room = 'guide-e2e';
    const customer = await open(context, 'customer.html', room, 'customer', 'cust', 1);
    const agent = await open(context, 'agent.html', room, 'agent', 'alice', 2);
    const dump = () => customer.cap.dump() + agent.cap.dump() + cluster.diagnostics(15);
    try {
      const node = await waitFor(() => agent.page.evaluate(() => window.replayNodeId('#export')).then((id) => id > 0 && id), {
        message: 'the button to show in the replay',
        describe: dump,
      });
      await agent.page.evaluate((id) => {
        window.guide.highlight(id);
        window.guide.annotate(id, 'Click Export to download the orders');
      }, node);

      const drawn = await waitFor(
        () =>
          customer.page.evaluate(() => {
            const host = window.overlay.host;
            const part = (name) => host?.querySelector(`[data-part="${name}"]`);
            if (!host || !part('box') || !part('bubble')) return null;
            const r = (el) => {
              const b = el.getBoundingClientRect();
              return { left: b.left, top: b.top, right: b.right, bottom: b.bottom };
            };
            return {
              box: r(part('box')),
              bubble: part('bubble').textContent,
              shade: part('shade')?.style.clipPath ?? null,
              button: r(document.getElementById('export')),
              hostClass: host.className,
              hostPointerEvents: getComputedStyle(host).pointerEvents,
            };
          }),
        { message: 'the highlight on the customer page', describe: dump },
      );
      const { box, button } = drawn;
      assert.ok(box.left <= button.left && box.right >= button.right, `box ${JSON.stringify(box)} spans button ${JSON.stringify(button)}`);
      assert.ok(box.top <= button.top && box.bottom >= button.bottom, `box ${JSON.stringify(box)} spans button ${JSON.stringify(button)}`);
      assert.ok(box.right - button.right < 12 && button.left - box.left < 12, 'the box hugs the button');
      assert.equal(drawn.bubble, 'Click Export to download the orders');
      // The page is shaded outside the highlight only: a clip path with the highlight cut out.
      assert.match(drawn.shade ?? '', /^path\(evenodd, /, 'the SDK shades outside the highlight');
      assert.match(drawn.hostClass, /\brr-block\b/);
      assert.equal(drawn.hostPointerEvents, 'none');

      // The overlay takes no clicks: the customer clicks the highlighted button itself.
      const hit = await customer.page.evaluate(() => {
        const b = document.getElementById('export').getBoundingClientRect();
        return document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2)?.id;
      });
      assert.equal(hit, 'export');
      await customer.page.click('#export');
      assert.equal(await customer.page.evaluate(() => window.clicks), 1);

      // The pointer: page coordinates of the replay, drawn on the customer's page.
      await agent.page.evaluate((id) => window.guide.pointer(200, 330, id), node);
      await waitFor(() => customer.page.evaluate(() => window.overlay.pointer?.x === 200), { message: 'the pointer', describe: dump });

      // Not recorded: the agent's replay has the overlay host (blocked, 0×0) and nothing in it.
      await customer.page.evaluate(() => window.recording.takeFullSnapshot());
      await new Promise((r) => setTimeout(r, 1500));
      const replayed = await agent.page.evaluate(() => {
        const host = window.replayDoc()?.querySelector('.assist-relay-guide, .rr-block');
        return host ? { children: host.childElementCount, width: host.getBoundingClientRect().width } : null;
      });
      assert.deepEqual(replayed, { children: 0, width: 0 }, 'the replay shows an empty 0-wide host');
      const leaked = agent.cap.received().some((f) => /Click Export to download/.test(f.text) && f.frame?.type !== 'guide');
      assert.equal(leaked, false, 'no rrweb event carried the annotation');

      await agent.page.evaluate(() => window.guide.clear());
      await waitFor(() => customer.page.evaluate(() => window.overlay.host.children.length === 0), { message: 'clear', describe: dump });
    } catch (e) {
      e.message += dump();
      throw e;
    } finally {
      await context.close();
    }
  });

  test('an audio call set up through the relay connects and carries audio both ways', { timeout: 60_000 }, async () => {
    const context = await newContext();
    const room = 'call-e2e';
    const customer = await open(context, 'customer.html', room, 'customer', 'cust', 1);
    const agent = await open(context, 'agent.html', room, 'agent', 'alice', 2);
    const dump = () => customer.cap.dump() + agent.cap.dump() + cluster.diagnostics(15);
    try {
      await waitFor(() => agent.page.evaluate(() => window.client.members.has('cust')), { message: 'the customer in presence' });
      await agent.page.evaluate(() => window.calls.start());
      await waitFor(
        async () =>
          (await agent.page.evaluate(() => window.calls.state)) === 'connected' &&
          (await customer.page.evaluate(() => window.calls.state)) === 'connected',
        { timeout: 20000, message: 'both sides connected', describe: dump },
      );
      assert.equal(await customer.page.evaluate(() => window.asked?.from?.id), 'alice', 'the customer consented to alice');
      await waitFor(async () => (await audioPacketsReceived(customer.page)) > 10 && (await audioPacketsReceived(agent.page)) > 10, {
        timeout: 20000,
        message: 'audio packets flowing both ways',
        describe: dump,
      });
      const signals = agent.cap.frames.filter((f) => f.frame?.type === 'signal').map((f) => `${f.dir}:${f.frame.signal?.kind}`);
      assert.ok(signals.includes('sent:offer') && signals.includes('recv:answer'), signals.join(' '));

      await agent.page.evaluate(() => window.calls.hangup());
      await waitFor(() => customer.page.evaluate(() => window.calls.state === 'ended'), { message: 'the hang-up', describe: dump });
    } catch (e) {
      e.message += dump();
      throw e;
    } finally {
      await context.close();
    }
  });
});
