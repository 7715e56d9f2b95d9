// End-to-end: guidance and a voice call on the demo pages (sdk/demo: /demo/customer.html and
// /demo/agent.html), in Chromium, against three relay nodes in cluster mode (one Redis) behind
// nginx. The customer is pinned to node 1 and the agent to node 2, so guidance and call signaling
// cross Redis.
//
// - highlight: the agent presses Highlight (#guide-highlight) and clicks the customer's #submit
//   button in its replay; the customer page shows the overlay box around the real #submit, and
//   the console draws its own copy over the replay. Screenshot: artifacts/agent-guidance.png
//   (E2E_UPDATE_DOCS_IMG=1 copies it to docs/img/agent-guidance.png).
// - after a page load (the customer navigates), guidance stays on an element only when it is still
//   the element picked (same node id, same element): never on whatever the id means on the new page.
// - call: fake microphones (--use-fake-device-for-media-stream --use-fake-ui-for-media-stream, as
//   in guide.test.js); the agent presses Call, the customer sees the consent prompt before any
//   getUserMedia, accepts, and both pages show `connected`; the agent hangs up.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startCluster, waitFor, ROOT, CHROMIUM } from '../harness.js';
import { run, converged, navigate, artifactPath, sendChat, waitChat } from '../pages.js';

let cluster;
let browser;

/** Chromium with fake media devices (and no permission prompt), as guide.test.js launches it. */
async function launchWithFakeMedia() {
  const { chromium } = await import('playwright-core');
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found (apt-get install -y chromium)`);
  return chromium.launch({
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
  });
}

/** Viewport coordinates (agent page) of the centre of `selector` in the replay iframe. */
function replayCentre(page, selector) {
  return page.evaluate((sel) => {
    const iframe = document.querySelector('#replay iframe');
    const el = iframe?.contentDocument?.querySelector(sel);
    if (!el) return null;
    const fr = iframe.getBoundingClientRect();
    const scale = fr.width / (Number(iframe.width) || iframe.offsetWidth);
    const b = el.getBoundingClientRect();
    return { x: fr.left + (b.left + b.width / 2) * scale, y: fr.top + (b.top + b.height / 2) * scale };
  }, selector);
}

const callState = (page) => page.evaluate(() => document.querySelector('#call-state')?.dataset.state ?? null);

describe('demo pages: guidance and a voice call in Chromium (3 nodes + nginx + Redis)', { timeout: 120_000 }, () => {
  before(async () => {
    [cluster, browser] = await Promise.all([startCluster(), launchWithFakeMedia()]);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await cluster?.stop();
  });

  test('Highlight + a click on #submit in the replay draws the box around the real #submit', { timeout: 45_000 }, () =>
    run(cluster, browser, 'demo-guide', async (s) => {
      const customer = await s.customer({ node: 1, sub: 'maria' });
      const agent = await s.agent({ node: 2, sub: 'agent-li' });
      await converged(customer, agent, { what: 'the form to replay' });

      await agent.page.click('#guide-highlight');
      assert.equal(await agent.page.getAttribute('#guide-highlight', 'aria-pressed'), 'true');
      const at = await replayCentre(agent.page, '#submit');
      assert.ok(at, '#submit in the replay');
      await agent.page.mouse.move(at.x, at.y);
      await agent.page.mouse.click(at.x, at.y);

      // The customer's real page: the overlay's box hugs the real #submit.
      const drawn = await waitFor(
        () =>
          customer.page.evaluate(() => {
            const host = document.querySelector('.assist-relay-guide');
            const box = host?.firstElementChild;
            if (!box) return null;
            const r = (el) => {
              const b = el.getBoundingClientRect();
              return { left: b.left, top: b.top, right: b.right, bottom: b.bottom };
            };
            return { box: r(box), button: r(document.getElementById('submit')), pe: getComputedStyle(host).pointerEvents, cls: host.className };
          }),
        { timeout: 8000, message: 'the highlight box on the customer page' },
      );
      const { box, button } = drawn;
      assert.ok(box.left <= button.left && box.right >= button.right && box.top <= button.top && box.bottom >= button.bottom, `box ${JSON.stringify(box)} around #submit ${JSON.stringify(button)}`);
      assert.ok(box.right - button.right < 12 && button.left - box.left < 12 && box.bottom - button.bottom < 12, 'the box hugs #submit');
      assert.equal(drawn.pe, 'none', 'the overlay takes no input');
      assert.match(drawn.cls, /\brr-block\b/, 'the overlay is not recorded');
      // The customer can still click the highlighted button itself.
      const hit = await customer.page.evaluate(() => {
        const b = document.getElementById('submit').getBoundingClientRect();
        return document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2)?.id;
      });
      assert.equal(hit, 'submit');

      // Point: the pointer follows the agent's mouse over the replay (page coordinates).
      await agent.page.click('#guide-point');
      const cardAt = await replayCentre(agent.page, '#card');
      await agent.page.mouse.move(cardAt.x, cardAt.y, { steps: 4 });
      // (moves are throttled, the last one always goes out: wait for it)
      let pointer = null;
      await waitFor(
        async () => {
          const [p, card] = await customer.page.evaluate(() => [window.demo.overlay.pointer, document.getElementById('card').getBoundingClientRect().toJSON()]);
          pointer = { p, card };
          return p && Math.abs(p.x - (card.left + card.width / 2)) < 6 && Math.abs(p.y - (card.top + card.height / 2)) < 6;
        },
        { timeout: 5000, message: 'the pointer over #card on the customer page', describe: () => JSON.stringify(pointer) },
      );

      // Annotate: click #notes in the replay, type a note, send; the bubble shows on the real page.
      await agent.page.click('#guide-annotate');
      const notesAt = await replayCentre(agent.page, '#notes');
      await agent.page.mouse.click(notesAt.x, notesAt.y);
      await agent.page.fill('#annotation-text', 'Your delivery time goes here');
      await agent.page.press('#annotation-text', 'Enter');
      const bubble = await waitFor(
        () =>
          customer.page.evaluate(() => {
            const host = document.querySelector('.assist-relay-guide');
            const el = [...(host?.children ?? [])].find((c) => c.textContent === 'Your delivery time goes here');
            if (!el) return null;
            const b = el.getBoundingClientRect();
            const n = document.getElementById('notes').getBoundingClientRect();
            return { top: b.top, left: b.left, nameBottom: n.bottom, nameLeft: n.left };
          }),
        { timeout: 8000, message: 'the note under #name on the customer page' },
      );
      assert.ok(bubble.top >= bubble.nameBottom && bubble.top - bubble.nameBottom < 20, `note below #notes: ${JSON.stringify(bubble)}`);
      assert.equal(await customer.page.evaluate(() => window.demo.overlay.highlighted !== null), true, 'the box is still there');

      // For the picture: a few chat lines, the customer's mouse near the form.
      await sendChat(customer, 'Hi! Where do I say when to deliver?');
      await sendChat(agent, 'In Notes: I have marked it for you, then press Continue.');
      await waitChat(customer, 'I have marked it for you');
      await customer.page.mouse.click(560, 135); // on the page's intro text: no effect

      // The console draws its own copy over the replay, around the replayed #submit.
      await agent.page.mouse.move(5, 5); // no hover preview in the picture
      await agent.page.waitForSelector('#guide-layer .g-box', { state: 'visible', timeout: 5000 });
      await agent.page.waitForSelector('#guide-layer .g-note', { state: 'visible', timeout: 5000 });
      await new Promise((r) => setTimeout(r, 1200)); // the replayed mouse catches up (rrweb sends moves in batches)
      const shot = artifactPath('agent-guidance.png');
      await agent.page.screenshot({ path: shot });
      if (process.env.E2E_UPDATE_DOCS_IMG) {
        fs.mkdirSync(path.join(ROOT, 'docs/img'), { recursive: true });
        fs.copyFileSync(shot, path.join(ROOT, 'docs/img/agent-guidance.png'));
      }

      // Clear removes it from the customer's page.
      await agent.page.click('#guide-clear');
      await waitFor(() => customer.page.evaluate(() => (document.querySelector('.assist-relay-guide')?.childElementCount ?? 0) === 0), {
        timeout: 5000,
        message: 'Clear to remove the box',
      });
    }));

  test('after a page load, guidance stays only on elements that are still the ones picked', { timeout: 45_000 }, () =>
    run(cluster, browser, 'demo-guide-nav', async (s) => {
      const customer = await s.customer({ node: 1, sub: 'maria' });
      const agent = await s.agent({ node: 2, sub: 'agent-li' });
      await converged(customer, agent, { what: 'page 1 to replay' });
      // What the customer's overlay box surrounds (the element at its centre, overlay aside).
      const boxedId = () =>
        customer.page.evaluate(() => {
          const host = document.querySelector('.assist-relay-guide');
          const box = host?.firstElementChild;
          if (!box) return null;
          const b = box.getBoundingClientRect();
          host.style.display = 'none';
          const el = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
          host.style.display = '';
          return el?.id || el?.tagName || '?';
        });
      const boxedFor = async (ms) => {
        const seen = new Set();
        for (const end = Date.now() + ms; Date.now() < end; ) {
          seen.add(await boxedId());
          await new Promise((r) => setTimeout(r, 100));
        }
        return [...seen];
      };
      await agent.page.click('#guide-highlight');
      let at = await replayCentre(agent.page, '#submit');
      await agent.page.mouse.click(at.x, at.y);
      await waitFor(async () => (await boxedId()) === 'submit', { timeout: 8000, message: 'the box on #submit' });

      // Page 2 has no #submit: rrweb numbers the new page from 1 again, so that node id now means
      // another element. Nothing may be drawn on it, and the console drops the highlight.
      await navigate(customer, 2);
      assert.deepEqual(await boxedFor(1500), [null], 'no box on page 2');
      assert.equal(await agent.page.evaluate(() => window.demo.guide.highlighted), null);

      // The nav link is the same element on every page: highlighted on page 1, kept on page 3.
      await navigate(customer, 1);
      await converged(customer, agent, { what: 'page 1 to replay again' });
      at = await replayCentre(agent.page, '#nav-2');
      await agent.page.mouse.click(at.x, at.y);
      await waitFor(async () => (await boxedId()) === 'nav-2', { timeout: 8000, message: 'the box on #nav-2' });
      await navigate(customer, 3);
      await waitFor(async () => (await boxedId()) === 'nav-2', { timeout: 8000, message: 'the box on #nav-2 on page 3' });
      assert.deepEqual((await boxedFor(800)).filter((id) => id !== 'nav-2'), [], 'only ever on #nav-2');
    }));

  test('the agent calls, the customer consents before any getUserMedia, both connected', { timeout: 45_000 }, () =>
    run(cluster, browser, 'demo-call', async (s) => {
      const customer = await s.customer({ node: 1, sub: 'maria' });
      const agent = await s.agent({ node: 2, sub: 'agent-li' });
      await customer.page.evaluate(() => {
        const md = navigator.mediaDevices;
        const real = md.getUserMedia.bind(md);
        window.gumCalls = 0;
        md.getUserMedia = (c) => {
          window.gumCalls++;
          return real(c);
        };
      });
      assert.equal(await callState(agent.page), 'idle');
      await agent.page.waitForSelector('#call-start:not([disabled])', { timeout: 8000 });
      await agent.page.click('#call-start');

      await customer.page.waitForSelector('#call-consent', { state: 'visible', timeout: 8000 });
      assert.equal(await callState(customer.page), 'ringing');
      await customer.page.screenshot({ path: artifactPath('customer-call-consent.png') });
      assert.equal(await customer.page.evaluate(() => window.gumCalls), 0, 'no getUserMedia before consent');
      await customer.page.click('#call-accept');
      await customer.page.waitForSelector('#call-consent', { state: 'hidden', timeout: 3000 });

      let states = [];
      await waitFor(
        async () => {
          states = [await callState(agent.page), await callState(customer.page)];
          return states.every((st) => st === 'connected');
        },
        { timeout: 15000, message: 'both #call-state connected', describe: () => `agent, customer: ${states.join(', ')}` },
      );
      assert.equal(await customer.page.evaluate(() => window.gumCalls), 1, 'getUserMedia once, after Accept');
      await agent.page.screenshot({ path: artifactPath('agent-call-connected.png') });
      await customer.page.screenshot({ path: artifactPath('customer-call-connected.png') });
      assert.equal(await customer.page.isVisible('#call-hangup'), true);
      assert.equal(await agent.page.isVisible('#call-hangup'), true);

      await agent.page.click('#call-hangup');
      await waitFor(async () => (await callState(customer.page)) === 'ended' && (await callState(agent.page)) === 'ended', {
        timeout: 5000,
        message: 'the hang-up on both pages',
      });
      assert.equal(await agent.page.isVisible('#call-start'), true);
    }));
});
