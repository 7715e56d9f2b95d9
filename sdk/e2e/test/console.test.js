// End-to-end: the agent console's and the customer page's behaviour (sdk/demo) in Chromium, against
// three relay nodes in cluster mode (one Redis) behind nginx: the customer on node 1, agents on
// node 2. Chromium is started once for the suite.
//
// - fit to width and zoom: a 1920×1080 customer on a 1280×720 console; the scale in use, the size
//   the customer's text is drawn at, scrolling at fixed zooms, the side panel hidden.
// - the page timeline: full URLs on hover; a click shows that page paused (with a slider over the
//   page's time) while the live replay goes on underneath; Back to live returns.
// - a highlight dims the customer's page only outside the highlighted element, never the chat.
// - End session asks first; the customer then sees that the session has ended, chat disabled.
// - phones: the customer's status pill is whole and inside the window.
// - the waiting customers list (GET /demo/rooms?state=waiting): an agent picks the customer there.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, launchBrowser, waitFor } from '../harness.js';
import { run, converged, navigate, artifactPath, sendChat, waitChat, waitStatus } from '../pages.js';

let cluster;
let browser;

const CONSOLE_720 = { width: 1280, height: 720 };
const WIDE_CUSTOMER = { width: 1920, height: 1080 };

/** The live (or paused) replay's zoom: scale, the customer's window, the viewer's width and scroll. */
function zoomState(page, root = '#replay') {
  return page.evaluate((root) => {
    const el = document.querySelector(root);
    const iframe = el.querySelector('iframe');
    const fr = iframe.getBoundingClientRect();
    const w = Number(iframe.getAttribute('width'));
    const doc = iframe.contentDocument;
    const h1 = doc.querySelector('h1');
    const drawn = fr.width / w; // what the transform really does
    return {
      scale: Number(el.dataset.scale),
      drawn,
      customerWidth: w,
      viewerWidth: el.clientWidth,
      scrollWidth: el.scrollWidth,
      scrollHeight: el.scrollHeight,
      clientHeight: el.clientHeight,
      // the customer's body text and heading as drawn on the agent's screen, in CSS px
      bodyPx: parseFloat(getComputedStyle(doc.querySelector('.muted') ?? doc.body).fontSize) * drawn,
      h1Px: h1 ? h1.getBoundingClientRect().height * drawn : null,
      level: document.querySelector('#zoom-level').textContent,
    };
  }, root);
}

/** The replayed element's centre in the agent page's viewport (as demo-guide.test.js). */
function replayCentre(page, selector) {
  return page.evaluate((sel) => {
    const iframe = document.querySelector('#replay iframe');
    const el = iframe?.contentDocument?.querySelector(sel);
    if (!el) return null;
    const fr = iframe.getBoundingClientRect();
    const scale = fr.width / (Number(iframe.getAttribute('width')) || iframe.offsetWidth);
    const b = el.getBoundingClientRect();
    return { x: fr.left + (b.left + b.width / 2) * scale, y: fr.top + (b.top + b.height / 2) * scale };
  }, selector);
}

/** RGB of the page's screenshot at the given viewport points (decoded in the page's own canvas). */
async function pixels(page, points) {
  const png = (await page.screenshot()).toString('base64');
  return page.evaluate(
    async ([png, points]) => {
      const img = new Image();
      img.src = `data:image/png;base64,${png}`;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.width;
      c.height = img.height;
      const ctx = c.getContext('2d');
      ctx.drawImage(img, 0, 0);
      return points.map(([x, y]) => [...ctx.getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3)]);
    },
    [png, points],
  );
}
const brightness = ([r, g, b]) => (r + g + b) / 3;

describe('the agent console and the customer page in Chromium (3 nodes + nginx + Redis)', { timeout: 200_000 }, () => {
  before(async () => {
    [cluster, browser] = await Promise.all([startCluster(), launchBrowser()]);
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await cluster?.stop();
  });

  test('a 1920-wide customer on a 1280×720 console: fit to width, zoom, side panel hidden', { timeout: 60_000 }, () =>
    run(cluster, browser, 'zoom', async (s) => {
      const customer = await s.customer({ node: 1, sub: 'wide', viewport: WIDE_CUSTOMER });
      const agent = await s.agent({ node: 2, sub: 'agent-zoom', viewport: CONSOLE_720 });
      await converged(customer, agent, { what: 'the wide page to replay' });
      const a = agent.page;
      assert.equal(await a.inputValue('#zoom'), 'fit', 'the console starts fitted to the width');

      // Fit: the customer's 1920 px fill the viewer's width, and the page scrolls vertically.
      await waitFor(async () => (await zoomState(a)).scale > 0, { message: 'the replay to be scaled' });
      const fit = await zoomState(a);
      assert.equal(fit.customerWidth, WIDE_CUSTOMER.width);
      assert.ok(Math.abs(fit.drawn - fit.viewerWidth / 1920) < 0.002, `fit to width: drawn at ${fit.drawn}, viewer ${fit.viewerWidth} px`);
      assert.ok(Math.abs(fit.drawn - fit.scale) < 0.001, 'data-scale is the scale drawn');
      assert.ok(fit.scrollWidth <= fit.viewerWidth + 1, `no horizontal scroll at fit (${fit.scrollWidth} > ${fit.viewerWidth})`);
      assert.equal(fit.level, `${Math.round(fit.scale * 100)} %`);
      const fitShot = artifactPath('console-1280-fit.png');
      await a.screenshot({ path: fitShot });

      // The side panel hidden: the replay takes the console's width, the text becomes readable
      // (the customer's 15 px body text at 9.5 px or more; its heading at 14 px or more).
      await a.click('#side-toggle');
      await waitFor(async () => (await zoomState(a)).viewerWidth > fit.viewerWidth + 200, { message: 'the viewer to widen' });
      await waitFor(async () => Math.abs((await zoomState(a)).drawn - (await zoomState(a)).viewerWidth / 1920) < 0.002, { message: 'the fit to follow the width' });
      const wide = await zoomState(a);
      assert.ok(wide.drawn >= 0.63, `fit with the panel hidden: ${wide.drawn}`);
      assert.ok(wide.bodyPx >= 9.5, `body text drawn at ${wide.bodyPx.toFixed(2)} px`);
      assert.ok(wide.h1Px >= 14, `heading drawn ${wide.h1Px.toFixed(1)} px high`);
      await a.screenshot({ path: artifactPath('console-1280-fit-panel-hidden.png') });

      // Fixed zooms: 100 % draws the customer's text at its own size and the viewer scrolls both ways.
      for (const [value, want] of [['1', 1], ['0.75', 0.75], ['0.5', 0.5]]) {
        await a.selectOption('#zoom', value);
        await waitFor(async () => Math.abs((await zoomState(a)).drawn - want) < 0.001, { message: `zoom ${value}` });
        const z = await zoomState(a);
        assert.equal(z.level, `${want * 100} %`);
        assert.ok(Math.abs(z.bodyPx - 15 * want) < 0.6, `zoom ${value}: body text ${z.bodyPx} px`);
        if (want >= 0.75) {
          assert.ok(z.scrollWidth > z.viewerWidth, `zoom ${value}: the viewer scrolls horizontally`);
          assert.ok(z.scrollHeight > z.clientHeight, `zoom ${value}: and vertically`);
        }
      }
      await a.selectOption('#zoom', '1');
      await a.screenshot({ path: artifactPath('console-1280-100.png') });

      // The choice is kept when the console reloads (per tab), and the replay still follows the customer.
      await a.reload();
      await waitStatus(a, 'live');
      assert.equal(await a.inputValue('#zoom'), '1');
      await customer.page.locator('#name').pressSequentially('Wide Screen');
      await converged(customer, agent, { what: 'typing at 100 %' });
      await a.selectOption('#zoom', 'fit');
      await a.click('#side-toggle');
      await waitFor(async () => Math.abs((await zoomState(a)).drawn - (await zoomState(a)).viewerWidth / 1920) < 0.002, { message: 'fit again' });
    }));

  test('the page timeline: full URL on hover, a click shows that page paused, Back to live returns', { timeout: 60_000 }, () =>
    run(cluster, browser, 'timeline', async (s) => {
      const customer = await s.customer({ node: 1, sub: 'tl-cust' });
      const agent = await s.agent({ node: 2, sub: 'tl-agent' });
      await converged(customer, agent);
      const c = customer.page;
      const a = agent.page;
      await c.locator('#name').pressSequentially('Grace Hopper');
      await converged(customer, agent, { what: 'the typed name' });
      const page1Url = c.url();
      await navigate(customer, 2);
      await converged(customer, agent, { what: 'page 2' });
      await a.waitForFunction(() => document.querySelectorAll('#timeline li[data-seekable="true"]').length >= 2);

      // Full URLs on hover: the entry's title is the customer's whole URL (query included).
      const entries = await a.$$eval('#timeline li', (lis) => lis.map((li) => ({ title: li.title, offset: li.dataset.offset, current: li.classList.contains('current'), seekable: li.dataset.seekable })));
      const first = entries.find((e) => e.title.split('\n')[0] === page1Url);
      assert.ok(first, `an entry titled with the full URL ${page1Url}: ${JSON.stringify(entries)}`);
      assert.ok(entries.at(-1).title.startsWith(c.url()), 'the current page too');
      await a.hover(`#timeline li[data-offset="${first.offset}"]`);

      // Click page 1: a paused view of page 1 over the live replay, which stays on page 2.
      await a.click(`#timeline li[data-offset="${first.offset}"]`);
      await a.waitForSelector('#past:not([hidden])');
      assert.equal(await a.getAttribute('#viewer-mode', 'data-mode'), 'past');
      assert.ok(await a.isVisible('#back-to-live'), 'a visible Back to live');
      assert.ok(await a.$eval(`#timeline li[data-offset="${first.offset}"]`, (li) => li.classList.contains('viewing')), 'the entry shown is marked');
      const past = () =>
        a.evaluate(() => {
          const d = document.querySelector('#past-replay iframe')?.contentDocument;
          return { h1: d?.querySelector('h1')?.textContent ?? null, name: d?.querySelector('#name')?.value ?? null, list: !!d?.querySelector('#list') };
        });
      await waitFor(async () => (await past()).h1 === 'Your details', { message: 'page 1 in the paused view' });
      const atLoad = await past();
      assert.equal(atLoad.name, '', 'at the page load the name was not typed yet');
      // The slider moves within the page: at its end, the name as typed.
      const max = Number(await a.getAttribute('#past-seek', 'max'));
      await a.locator('#past-seek').fill(String(max));
      await waitFor(async () => (await past()).name === 'Grace Hopper', { message: 'the name at the end of page 1', describe: async () => JSON.stringify(await past()) });
      // Meanwhile the live replay follows the customer on page 2.
      await c.click('#add');
      await converged(customer, agent, { what: 'the live replay under the paused view' });
      await a.screenshot({ path: artifactPath('console-timeline-paused.png') });

      // Back to live.
      await a.click('#back-to-live');
      await a.waitForSelector('#past', { state: 'hidden' });
      assert.equal(await a.getAttribute('#viewer-mode', 'data-mode'), 'live');
      assert.equal(await a.$$eval('#timeline li.viewing', (l) => l.length), 0);
      await c.click('#add');
      await converged(customer, agent, { what: 'live again' });
      // Escape leaves the paused view too.
      await a.click(`#timeline li[data-offset="${first.offset}"]`);
      await a.waitForSelector('#past:not([hidden])');
      await a.keyboard.press('Escape');
      await a.waitForSelector('#past', { state: 'hidden' });
    }));

  test('a highlight dims the customer page only outside its element, never the chat', { timeout: 45_000 }, () =>
    run(cluster, browser, 'dim', async (s) => {
      const customer = await s.customer({ node: 1, sub: 'dim-cust' });
      const agent = await s.agent({ node: 2, sub: 'dim-agent' });
      await converged(customer, agent);
      const c = customer.page;
      const spots = await c.evaluate(() => {
        const centre = (el) => {
          const b = el.getBoundingClientRect();
          return [b.left + b.width / 2, b.top + b.height / 2];
        };
        const card = document.querySelector('section.page').getBoundingClientRect();
        const log = document.getElementById('chat-log').getBoundingClientRect();
        return {
          target: centre(document.getElementById('submit')),
          chat: [log.left + log.width / 2, log.top + log.height / 2],
          chatTitle: centre(document.querySelector('#chat h2')),
          page: [card.left + 10, card.top + 10], // the form's card, outside the target
          background: [card.left - 8 > 0 ? card.left - 8 : 4, card.bottom + 8],
        };
      });
      const points = Object.values(spots);
      const before = await pixels(c, points);

      await agent.page.click('#guide-highlight');
      const at = await replayCentre(agent.page, '#submit');
      await agent.page.mouse.click(at.x, at.y);
      await c.waitForSelector('#guide-dim:not([hidden])', { timeout: 8000 });
      await c.waitForTimeout(200); // a frame to draw
      const during = await pixels(c, points);
      const names = Object.keys(spots);
      const report = names.map((n, i) => `${n} ${before[i]} -> ${during[i]}`).join('; ');
      const same = (i) => before[i].every((v, k) => Math.abs(v - during[i][k]) <= 3);
      assert.ok(same(names.indexOf('target')), `the highlighted element is not dimmed: ${report}`);
      assert.ok(same(names.indexOf('chat')), `the chat panel is not dimmed: ${report}`);
      assert.ok(same(names.indexOf('chatTitle')), `the chat panel's title is not dimmed: ${report}`);
      for (const n of ['page', 'background']) {
        const i = names.indexOf(n);
        assert.ok(brightness(during[i]) < brightness(before[i]) - 15, `${n} is dimmed: ${report}`);
      }
      // The chat still works while dimmed, and the dim host is not recorded.
      await sendChat(customer, 'can you see the button?');
      await waitChat(agent, 'can you see the button?');
      assert.match(await c.getAttribute('#guide-dim-host', 'class'), /\brr-block\b/);
      await c.screenshot({ path: artifactPath('customer-highlight-dimmed.png') });

      // Clear: nothing is dimmed any more.
      await agent.page.click('#guide-clear');
      await c.waitForSelector('#guide-dim', { state: 'hidden', timeout: 8000 });
      await c.waitForTimeout(200);
      const after = await pixels(c, points);
      assert.ok(after.every((p, i) => p.every((v, k) => Math.abs(v - before[i][k]) <= 3)), `all back: ${before} vs ${after}`);
    }));

  test('End session asks first; the customer sees that the session has ended, chat disabled', { timeout: 45_000 }, () =>
    run(cluster, browser, 'end', async (s) => {
      const customer = await s.customer({ node: 1, sub: 'end-cust' });
      const agent = await s.agent({ node: 2, sub: 'end-agent' });
      await converged(customer, agent);
      const a = agent.page;
      const c = customer.page;

      // Keep the session: nothing happens.
      await a.click('#end');
      await a.waitForSelector('#end-dialog[open]');
      assert.match(await a.textContent('#end-dialog'), /End this session for everyone\?/);
      await a.click('#end-cancel');
      await a.waitForSelector('#end-dialog', { state: 'hidden' });
      await sendChat(customer, 'still there?');
      await waitChat(agent, 'still there?');
      assert.equal(await c.getAttribute('#status', 'data-status'), 'live');
      // Escape cancels too.
      await a.click('#end');
      await a.waitForSelector('#end-dialog[open]');
      await a.keyboard.press('Escape');
      await a.waitForSelector('#end-dialog', { state: 'hidden' });
      await sendChat(agent, 'yes, still here');
      await waitChat(customer, 'yes, still here');

      // End it.
      await a.click('#end');
      await a.waitForSelector('#end-dialog[open]');
      await a.screenshot({ path: artifactPath('console-end-confirm.png') });
      await a.click('#end-confirm');
      await waitStatus(c, 'ended', 10_000);
      assert.equal(await c.getAttribute('#status', 'title'), 'the session has ended');
      assert.ok(await c.isVisible('#session-ended'));
      assert.match(await c.textContent('#session-ended'), /The session has ended/);
      assert.equal(await c.isDisabled('#chat-input'), true, 'the chat box is disabled');
      assert.equal(await c.isDisabled('#chat-send'), true);
      assert.equal(await c.getAttribute('#chat-input', 'placeholder'), 'The session has ended');
      await waitFor(() => customer.cap.sockets.every((x) => x.closed) && agent.cap.sockets.every((x) => x.closed), { timeout: 10_000, message: 'every socket closed (4502)' });
      await waitStatus(a, 'disconnected', 10_000);
      assert.equal(await a.getAttribute('#status', 'title'), 'the session has ended');
      assert.match(await a.textContent('#replay-note'), /The session has ended/);
      assert.equal(await a.isDisabled('#end'), true);
      // Nothing reconnects after 4502.
      await c.waitForTimeout(1500);
      assert.equal(customer.cap.sockets.length, 1, 'the customer did not reconnect');
      await c.screenshot({ path: artifactPath('customer-session-ended.png') });
    }));

  for (const viewport of [
    { width: 390, height: 844 },
    { width: 360, height: 740 },
  ]) {
    test(`a phone (${viewport.width}×${viewport.height}): the customer's status pill is whole and inside the window`, { timeout: 30_000 }, () =>
      run(cluster, browser, `phone${viewport.width}`, async (s) => {
        const customer = await s.customer({ node: 1, sub: 'phone', viewport, context: { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } });
        // (On a phone, a page wider than the screen widens the layout viewport, so `innerWidth`
        // is not the screen: compare with the device's width.)
        const pill = await customer.page.evaluate(() => {
          const el = document.getElementById('status');
          const r = el.getBoundingClientRect();
          const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
          let clippedBy = null;
          for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
            const pr = p.getBoundingClientRect();
            if (getComputedStyle(p).overflowX !== 'visible' && (r.left < pr.left - 0.5 || r.right > pr.right + 0.5)) clippedBy = p.className;
          }
          return {
            left: r.left,
            right: r.right,
            top: r.top,
            bottom: r.bottom,
            layoutWidth: innerWidth,
            visualWidth: visualViewport.width,
            pageWidth: document.documentElement.scrollWidth,
            textFits: el.scrollWidth <= el.clientWidth,
            hit: hit === el || el.contains(hit),
            clippedBy,
            text: el.textContent,
          };
        });
        const shot = artifactPath(`customer-phone-${viewport.width}.png`);
        await customer.page.screenshot({ path: shot });
        const at = JSON.stringify(pill);
        assert.equal(pill.text, 'live');
        assert.ok(pill.left >= 0 && pill.right <= viewport.width, `the pill inside the screen: ${at}`);
        assert.ok(pill.top >= 0 && pill.bottom <= 120, `the pill at the top: ${at}`);
        assert.equal(pill.layoutWidth, viewport.width, `the page is not wider than the screen: ${at}`);
        assert.ok(pill.pageWidth <= viewport.width && pill.visualWidth <= viewport.width + 0.5, `the page does not scroll sideways: ${at}`);
        assert.ok(pill.textFits && pill.hit && !pill.clippedBy, `the pill is whole and on top: ${at}`);
        // The steps stay reachable.
        for (const n of [1, 2, 3]) assert.ok(await customer.page.isVisible(`#nav-${n}`), `#nav-${n}`);
      }));
  }

  test('an agent picks a waiting customer from the list (GET /demo/rooms?state=waiting)', { timeout: 45_000 }, () =>
    run(cluster, browser, 'waiting', async (s) => {
      // The customer opens a session nobody has taken yet.
      const room = `${s.room}-cust`;
      const customer = await s.customer({ node: 1, sub: 'waiting-cust', room });
      const listing = await (await fetch(`${cluster.base}/demo/rooms?state=waiting`)).json();
      assert.ok(listing.rooms.some((r) => r.room === room), `the listing has the room: ${JSON.stringify(listing)}`);

      // An agent at the desk (the console without a room, `?lobby`) sees the customer waiting.
      const agent = await s.agent({ node: 2, sub: 'waiting-agent', extra: { lobby: '1' }, until: 'lobby', viewport: CONSOLE_720 });
      const a = agent.page;
      assert.equal(agent.cap.sockets.length, 0, 'the desk joins no room');
      const item = `#waiting li[data-room="${room}"]`;
      await a.waitForSelector(item, { timeout: 10_000 });
      assert.match(await a.textContent(item), /waiting-cust/);
      assert.match(await a.textContent(item), /waiting \d+ s/);
      assert.match(await a.textContent(item), /customer\.html/, 'the page the customer is on');
      await a.screenshot({ path: artifactPath('console-waiting-list.png') });
      await Promise.all([a.waitForURL((u) => u.searchParams.get('room') === room && !u.searchParams.has('lobby')), a.click(`${item} a`)]);
      await waitStatus(a, 'live');
      assert.equal(await a.textContent('#room-name'), room);
      await converged(customer, agent, { what: 'the picked customer to replay' });
      await sendChat(agent, 'hello, I am here to help');
      await waitChat(customer, 'hello, I am here to help');

      // Now assisted: the room leaves the waiting list.
      await waitFor(async () => !(await a.$(item)), { timeout: 10_000, message: 'the room to leave the waiting list' });
      const assisted = await (await fetch(`${cluster.base}/demo/rooms?state=assisted`)).json();
      assert.ok(assisted.rooms.some((r) => r.room === room));
    }));
});
