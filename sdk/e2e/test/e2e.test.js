// End-to-end: the demo customer page and agent console in Debian's Chromium, against three relay
// nodes in cluster mode (one Redis) behind nginx, plus a compactor. The customer is pinned to node
// 1 and the agent to node 2 through nginx's /node/N/ws routes (harness.js), so every event crosses
// Redis. See ../README.md.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startCluster, launchBrowser, waitFor, tempDir, RELAY_BIN, ROOT, CONVERGE_MS } from '../harness.js';
import { run, converged, navigate, sendChat, waitChat, waitStatus, replayText, customerDom, artifactPath, status } from '../pages.js';

let cluster;
let browser;

describe('assist-relay in Chromium (3 nodes + nginx + Redis)', { timeout: 170_000 }, () => {
  before(async () => {
    [cluster, browser] = await Promise.all([startCluster(), launchBrowser()]);
    // The demo pages are served by every node, through nginx.
    const res = await fetch(`${cluster.base}/demo/customer.html`);
    assert.equal(res.status, 200, `GET /demo/customer.html through nginx: ${res.status} (is this relay built with --demo?)`);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await cluster?.stop();
  });

  test('the agent replays typing, clicks, scrolling and navigation live', { timeout: 60_000 }, () =>
    run(cluster, browser, 'live', async (s) => {
      const customer = await s.customer({ node: 1 });
      const agent = await s.agent({ node: 2 });
      assert.match(customer.cap.sockets.at(-1).url, /\/node\/1\/ws\?/);
      assert.match(agent.cap.sockets.at(-1).url, /\/node\/2\/ws\?/);
      assert.ok((await cluster.connections(1)) >= 1, 'the customer is on node 1');
      assert.ok((await cluster.connections(2)) >= 1, 'the agent is on node 2');
      await converged(customer, agent, { what: 'the first page to replay' });

      // Page 1: type into the form, pick a plan, click around.
      const c = customer.page;
      await c.click('#name');
      await c.locator('#name').pressSequentially('Ada Lovelace');
      await c.click('#card');
      await c.locator('#card').pressSequentially('5500 0000 0000 0004');
      await c.click('#password');
      await c.locator('#password').pressSequentially('pa55word');
      await c.click('#notes');
      await c.locator('#notes').pressSequentially('Call me after 5pm.\nThanks!');
      const options = await c.locator('#plan option').evaluateAll((os) => os.map((o) => o.value));
      await c.selectOption('#plan', options.at(-1));
      await converged(customer, agent, { what: 'typed values and the chosen plan to replay' });

      // Submit: a real page load to page 3, which shows the name typed on page 1.
      await Promise.all([c.waitForURL((u) => u.searchParams.get('page') === '3'), c.click('#submit')]);
      await waitStatus(c, 'live');
      assert.equal((await c.textContent('#confirm-name')).trim(), 'Ada Lovelace');
      await converged(customer, agent, { what: 'page 3 (after submit) to replay' });

      // Page 2: a real page load; add rows (mutations) and scroll the list.
      await navigate(customer, 2);
      await converged(customer, agent, { what: 'page 2 to replay after navigation' });
      const rowsBefore = (await customerDom(c)).count;
      for (let i = 0; i < 5; i++) await c.click('#add');
      await waitFor(async () => (await customerDom(c)).count > rowsBefore, { message: '#add to add elements' });
      await converged(customer, agent, { what: 'added rows to replay' });
      await c.hover('#list');
      await c.mouse.wheel(0, 240);
      await waitFor(() => c.evaluate(() => document.querySelector('#list').scrollTop > 0), { message: 'the customer list to scroll' });
      await c.evaluate(() => window.scrollTo(0, 120));
      await converged(customer, agent, { scroll: true, what: 'the scroll position to replay' });

      // Back to page 1.
      await navigate(customer, 1);
      await converged(customer, agent, { what: 'page 1 to replay again' });
      assert.equal(await status(agent.page), 'live');
    }));

  test('chat both ways; a late agent on node 3 converges and gets the chat; screenshots', { timeout: 60_000 }, () =>
    run(cluster, browser, 'chat', async (s) => {
      const customer = await s.customer({ node: 1, sub: 'maria' });
      const agent = await s.agent({ node: 2, sub: 'agent-li' });
      await converged(customer, agent);

      await sendChat(customer, 'Hi, I cannot find where to change my plan.');
      await waitChat(agent, 'Hi, I cannot find where to change my plan.', { from: 'maria' });
      await waitChat(customer, 'Hi, I cannot find where to change my plan.');
      await sendChat(agent, 'Hello Maria! Pick a plan in the form, I can see your screen.');
      await waitChat(customer, 'Hello Maria! Pick a plan in the form');
      await waitChat(agent, 'Hello Maria! Pick a plan in the form', { from: 'agent-li' });

      const c = customer.page;
      await c.locator('#name').pressSequentially('Maria Garcia');
      await c.locator('#notes').pressSequentially('Upgrade to the yearly plan, please.');
      await navigate(customer, 2);
      for (let i = 0; i < 3; i++) await c.click('#add');
      await converged(customer, agent);

      // A second agent joins late, on the third node: keyframe + tail from Redis, and the chat.
      const late = await s.agent({ node: 3, sub: 'agent-sam' });
      assert.match(late.cap.sockets.at(-1).url, /\/node\/3\/ws\?/);
      await converged(customer, late, { what: 'the late agent to converge' });
      await waitChat(late, 'Hi, I cannot find where to change my plan.');
      await waitChat(late, 'Hello Maria! Pick a plan in the form');
      await sendChat(late, 'Sam here, joining to help.');
      await waitChat(customer, 'Sam here, joining to help.');
      await waitChat(agent, 'Sam here, joining to help.');

      // Screenshots for the README: the agent console with the replayed page and the chat.
      await sendChat(customer, 'Found it, thank you!');
      await waitChat(agent, 'Found it, thank you!');
      await converged(customer, agent);
      const agentShot = artifactPath('agent-console.png');
      const customerShot = artifactPath('customer.png');
      await agent.page.screenshot({ path: agentShot });
      await customer.page.screenshot({ path: customerShot });
      if (process.env.E2E_UPDATE_DOCS_IMG) {
        fs.mkdirSync(path.join(ROOT, 'docs/img'), { recursive: true });
        fs.copyFileSync(agentShot, path.join(ROOT, 'docs/img/agent-console.png'));
        fs.copyFileSync(customerShot, path.join(ROOT, 'docs/img/customer.png'));
      }
    }));

  test('masking `inputs`: no typed value in any frame the agents receive (MessagePack)', { timeout: 60_000 }, () =>
    run(cluster, browser, 'mask', async (s) => {
      // The customer's token carries mask=inputs (minted with `relay token --mask inputs` and
      // handed to the page in place of /demo/token's answer).
      const token = cluster.token({ room: s.room, role: 'customer', sub: 'cust-m', mask: 'inputs' });
      const customer = await s.customer({ node: 1, sub: 'cust-m', codec: 'msgpack', token });
      const agent = await s.agent({ node: 2, codec: 'msgpack' });
      await converged(customer, agent, { values: false });
      const typed = {
        '#name': 'Qwyn Zabrowski',
        '#card': '4929 1234 5678 9012',
        '#password': 'Hunter2-Secret!',
        '#notes': 'my mother\u2019s maiden name is Vexley',
      };
      const c = customer.page;
      for (const [sel, value] of Object.entries(typed)) {
        await c.click(sel);
        await c.locator(sel).pressSequentially(value);
      }
      // The replayed inputs show the masked form, one * per character.
      await waitFor(
        () =>
          agent.page.evaluate((n) => {
            const d = document.querySelector('#replay iframe')?.contentDocument;
            const v = d?.querySelector('#name')?.value;
            return v && v.length === n && /^\*+$/.test(v);
          }, typed['#name'].length),
        { message: 'the agent to see #name masked' },
      );
      // Page 3 shows the name typed on page 1 (an echo, masked too); a late agent joins.
      await navigate(customer, 3);
      // The name shown on page 3 equals a typed value: the relay masks the echo.
      // (masked like rr-mask text: every non-whitespace character becomes *, whitespace stays.)
      const echoMasked = (p) =>
        p.page.evaluate((want) => {
          const t = document.querySelector('#replay iframe')?.contentDocument?.querySelector('#confirm-name')?.textContent.trim();
          return t === want;
        }, typed['#name'].replace(/\S/g, '*'));
      await waitFor(() => echoMasked(agent), { message: 'the agent to see page 3 with the echoed name masked' });
      const late = await s.agent({ node: 3, sub: 'late-m', codec: 'msgpack' });
      await waitFor(() => echoMasked(late), { message: 'the late agent to see page 3 with the echoed name masked' });

      for (const a of [agent, late]) {
        const recv = a.cap.received();
        assert.ok(recv.length > 0, `${a.label} received frames`);
        assert.ok(recv.every((f) => f.kind === 'binary'), `${a.label}: MessagePack frames only`);
        if (a === agent) {
          assert.ok(
            recv.some((f) => f.frame?.type === 'event' && f.frame.event?.type === 3 && f.frame.event.data?.source === 5),
            `${a.label}: received Input events (the masked typing)`,
          );
        }
        const streams = frameTexts(recv);
        for (const value of Object.values(typed)) {
          for (const needle of leakNeedles(value)) {
            const hit = streams.find((t) => t.includes(needle));
            assert.equal(hit, undefined, `${a.label} received ${JSON.stringify(needle)} (typed ${JSON.stringify(value)}): …${hit && hit.slice(Math.max(0, hit.indexOf(needle) - 120), hit.indexOf(needle) + 120)}…`);
          }
        }
      }
      const sent = frameTexts(customer.cap.frames.filter((f) => f.dir === 'sent')).join('\n');
      const sentRaw = Object.values(typed).filter((v) => sent.includes(v));
      // The page masks passwords itself (rrweb maskInputOptions); the other values must reach the
      // relay unmasked, or this test would say nothing about the relay's masking.
      assert.ok(sentRaw.length >= 1, `the customer's frames carried no typed value unmasked: the relay's masking was not exercised`);
    }));

  test('a native-screen placeholder appears and disappears in the agent view', { timeout: 45_000 }, () =>
    run(cluster, browser, 'native', async (s) => {
      const customer = await s.customer({ node: 1 });
      const agent = await s.agent({ node: 2 });
      await converged(customer, agent);
      await customer.page.click('#native-open');
      await waitStatus(agent.page, 'native', CONVERGE_MS);
      await waitFor(async () => (await replayText(agent.page)).includes('App screen'), {
        message: 'the placeholder page (built-in template: "App screen") in the replay',
        describe: () => 'replay text did not include "App screen"',
      });
      // The page timeline lists the native screen, as the current page.
      await agent.page.waitForSelector('#timeline li.current[data-kind="native"]', { timeout: CONVERGE_MS });
      await customer.page.click('#native-close');
      await waitStatus(agent.page, 'live', CONVERGE_MS);
      await converged(customer, agent, { what: 'the web page to replace the placeholder' });
      assert.ok(!(await replayText(agent.page)).includes('App screen'), 'placeholder gone');
      await agent.page.waitForSelector('#timeline li.current[data-kind="web"]', { timeout: CONVERGE_MS });
    }));

  test('a recording made by the compactor replays in the exported rrweb player', { timeout: 60_000 }, () =>
    run(cluster, browser, 'record', async (s) => {
      const customer = await s.customer({ node: 1, sub: 'rec-cust' });
      const agent = await s.agent({ node: 2, sub: 'rec-agent' });
      await converged(customer, agent);
      await customer.page.locator('#name').pressSequentially('Recorded Customer');
      await sendChat(customer, 'recording check: hello');
      await waitChat(agent, 'recording check: hello');
      await converged(customer, agent);
      const heading = await customer.page.evaluate(() => (document.querySelector('h1, h2, label')?.textContent || '').replace(/\s+/g, ' ').trim());
      assert.ok(heading, 'the customer page has a heading or label to look for');

      // The agent ends the session: everyone is closed with 4502 and the compactor records it.
      const hasEnd = await agent.page.evaluate(() => !!document.querySelector('#end'));
      if (hasEnd) {
        await agent.page.click('#end');
        await agent.page.click('#end-confirm'); // the confirmation (console.test.js covers it)
      } else await agent.page.evaluate(() => window.demo.client.end());
      await waitFor(() => agent.cap.sockets.every((x) => x.closed), { timeout: 10_000, message: 'the agent socket to close (4502)' });

      // `relay export --rrweb-dir` takes rrweb-player's dist/ as npm installs it (1.x or 2.x).
      const rrwebDir = path.join(path.dirname(new URL(import.meta.url).pathname), '../node_modules/rrweb-player/dist');
      const out = tempDir('assist-e2e-export-');
      let lastErr = '';
      await waitFor(
        () => {
          try {
            execFileSync(RELAY_BIN, ['export', s.room, '--archive-dir', cluster.archiveDir, '--out', out, '--rrweb-dir', rrwebDir], { encoding: 'utf8', stdio: 'pipe' });
            return true;
          } catch (e) {
            lastErr = String(e.stderr || e);
            return false;
          }
        },
        { timeout: 30_000, interval: 300, message: 'the compactor to write the recording (relay export to succeed)', describe: () => lastErr },
      );

      const viewer = await s.newPage('exported player', { viewport: { width: 1300, height: 900 } });
      // ("load" never fires for this page in Chromium from file://: wait for the DOM and the player.)
      await viewer.page.goto(`file://${out}/index.html`, { waitUntil: 'domcontentloaded' });
      await viewer.page.waitForFunction(() => !!window.assistPlayer, null, { timeout: 10_000 });
      assert.ok(!(await viewer.page.isVisible('#missing')), 'the player script loaded');
      await viewer.page.evaluate(() => {
        const p = window.assistPlayer;
        p.goto(p.getMetaData().totalTime, false);
      });
      // At the end of the recording the player shows the customer's page with the typed name.
      let seen;
      await waitFor(
        async () => {
          seen = await viewer.page.evaluate(() => {
            const d = document.querySelector('.replayer-wrapper iframe')?.contentDocument;
            return { text: d?.body?.textContent.replace(/\s+/g, ' ') || '', name: d?.querySelector('#name')?.value };
          });
          return seen.text.includes(heading) && seen.name === 'Recorded Customer';
        },
        { timeout: 10_000, message: `the player to show the recorded page (${JSON.stringify(heading)}, #name "Recorded Customer")`, describe: () => JSON.stringify(seen).slice(0, 500) },
      );
      const transcript = await viewer.page.textContent('#chat');
      assert.ok(transcript.includes('recording check: hello'), `chat transcript: ${transcript}`);
    }));

  test("the customer's node is SIGKILLed: the customer reconnects through nginx, the agent's view recovers", { timeout: 60_000 }, () =>
    run(cluster, browser, 'failover', async (s) => {
      const customer = await s.customer({ node: 1, sub: 'cust-f' });
      const agent = await s.agent({ node: 2 });
      const c = customer.page;
      await c.locator('#name').pressSequentially('Before the crash');
      await converged(customer, agent);

      await cluster.killNode(1);
      try {
        await waitFor(() => customer.cap.sockets.length >= 2 && !customer.cap.sockets.at(-1).closed, {
          timeout: 15_000,
          message: 'the customer to open a new socket',
        });
        await waitStatus(c, 'live', 15_000);
        assert.equal(await cluster.connections(1), null, 'node 1 is dead');
        // The customer's new connection went through nginx to node 2 or 3 (beside the agent's on 2).
        await waitFor(async () => (await cluster.connections(2)) + (await cluster.connections(3)) >= 2, {
          message: 'the customer connected to a surviving node',
          describe: () => 'connections on nodes 2 and 3 < 2',
        });
        await c.fill('#name', '');
        await c.locator('#name').pressSequentially('After the crash');
        await c.locator('#notes').pressSequentially('typed on a surviving node');
        await converged(customer, agent, { timeout: CONVERGE_MS + 4000, what: "the agent's view to recover" });
        assert.equal(await status(agent.page), 'live');
        await navigate(customer, 2);
        await converged(customer, agent, { what: 'navigation after the failover' });
      } finally {
        await cluster.restartNode(1);
      }
    }));
});

/**
 * Texts to search for leaks: every received frame's decoded text and raw bytes (MessagePack `event`
 * is bin holding JSON), and each chunked event's slices joined (a value may straddle two slices).
 */
function frameTexts(frames) {
  const out = [];
  let slices = [];
  for (const f of frames) {
    out.push(f.text);
    out.push(typeof f.raw === 'string' ? f.raw : Buffer.from(f.raw).toString('utf8'));
    if (f.frame?.type === 'chunk') {
      slices.push(f.dataBytes ?? Buffer.from(String(f.frame.data ?? ''), 'utf8'));
      if (f.frame.index === f.frame.count - 1) {
        out.push(Buffer.concat(slices).toString('utf8'));
        slices = [];
      }
    }
  }
  return out;
}

/** The typed value and its prefixes of 5+ characters (Input events carry every intermediate value). */
function leakNeedles(value) {
  const out = new Set([value, JSON.stringify(value).slice(1, -1)]);
  for (let n = 5; n < value.length; n++) out.add(value.slice(0, n));
  return [...out];
}
