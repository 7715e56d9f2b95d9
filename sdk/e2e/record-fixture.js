// Records the demo shop into loadtest/fixtures/demo-shop.json: the rrweb events of one short
// session, as agents receive them (masked by the relay), for the README's terminal walk-through
// and `loadtest cobrowse`.
//
//   cargo build -p assist-relay --bin relay && npm ci && npm run record-fixture
//
// Starts an embedded `relay serve --demo` (free loopback ports, a temporary archive directory),
// opens the demo customer page in Chromium (/usr/bin/chromium, playwright-core) and drives it:
// the form (name, card number, password, plan, notes), the basket (a long list: scroll, add
// items), the native payment sheet (the relay replaces it with its placeholder) and the
// confirmation page. It then ends the session (`POST /v1/rooms/{room}/close`), exports the
// recording (`relay export`) and writes its events as a JSON array. Timestamps are rebased to a
// fixed start, so that only the timing of the steps varies from one run to the next.
//
// Environment: RELAY_BIN (default target/debug/relay), CHROMIUM, FIXTURE_OUT (default
// loadtest/fixtures/demo-shop.json), E2E_DEMO_DIR (serve these built pages, no build).
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, RELAY_BIN, freePort, tempDir, waitFor, sleep, launchBrowser, ensureDemoBuilt, DEMO_DIR } from './harness.js';

const OUT = path.resolve(process.env.FIXTURE_OUT || path.join(ROOT, 'loadtest/fixtures/demo-shop.json'));
const SECRET = 'record-fixture-secret-0123456789abcdef';
const API_KEY = 'record-fixture-api-key-0123456789';
const ROOM = 'demo-shop';
/** The recording starts here (2026-01-01T00:00:00Z), whenever it was made. */
const EPOCH_MS = Date.UTC(2026, 0, 1);
const MAX_BYTES = 300 * 1024;

async function main() {
  if (!fs.existsSync(RELAY_BIN)) throw new Error(`relay binary not found: ${RELAY_BIN} (cargo build -p assist-relay --bin relay, or set RELAY_BIN)`);
  ensureDemoBuilt();
  const dir = tempDir('assist-record-');
  const archive = path.join(dir, 'archive');
  const [port, admin] = [await freePort(), await freePort()];
  const env = { ...process.env, RELAY_JWT_SECRET: SECRET, RELAY_API_KEY: API_KEY, RELAY_LOG: process.env.NODE_LOG || 'warn' };
  const log = fs.openSync(path.join(dir, 'relay.log'), 'a');
  const relay = spawn(
    RELAY_BIN,
    ['serve', '--demo', '--demo-dir', DEMO_DIR, '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${admin}`, '--archive-dir', archive],
    { env, stdio: ['ignore', log, log] },
  );
  const relayLog = () => fs.readFileSync(path.join(dir, 'relay.log'), 'utf8').split('\n').slice(-30).join('\n');
  let exited = null;
  relay.on('exit', (code, signal) => (exited = { code, signal }));
  try {
    await waitFor(
      async () => {
        if (exited) throw new Error(`relay exited ${JSON.stringify(exited)}:\n${relayLog()}`);
        const res = await fetch(`http://127.0.0.1:${admin}/readyz`).catch(() => null);
        return res?.status === 200;
      },
      { timeout: 20000, message: 'the relay /readyz' },
    );
    const browser = await launchBrowser();
    try {
      await drive(browser, `http://127.0.0.1:${port}/demo/customer.html`);
    } finally {
      await browser.close();
    }
    const res = await fetch(`http://127.0.0.1:${admin}/v1/rooms/${ROOM}/close`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}` } });
    if (res.status !== 200) throw new Error(`closing the room answered ${res.status} ${await res.text()}`);
    const exportDir = path.join(dir, 'export');
    // The embedded compactor writes the recording shortly after the close.
    const recording = await waitFor(
      () => {
        try {
          execFileSync(RELAY_BIN, ['export', ROOM, '--archive-dir', archive, '--out', exportDir], { env, stdio: 'pipe' });
        } catch {
          return null;
        }
        return fs.readFileSync(path.join(exportDir, 'recording.js'), 'utf8');
      },
      { timeout: 20000, message: 'the recording (relay export)' },
    );
    const data = JSON.parse(recording.replace(/^window\.ASSIST_RECORDING = /, '').replace(/;\s*$/, ''));
    const events = JSON.parse(data.events_json);
    writeFixture(events, `http://127.0.0.1:${port}`);
  } finally {
    relay.kill('SIGKILL');
    fs.closeSync(log);
  }
}

/** The customer's session: the form, the basket, the native sheet, the confirmation. */
async function drive(browser, base) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  const open = async (n) => {
    await page.goto(`${base}?room=${ROOM}&sub=shopper&page=${n}`);
    await live();
  };
  const live = async () => {
    await page.waitForFunction(() => document.querySelector('#status')?.dataset.status === 'live');
    await page.evaluate(() => window.demo.ready);
  };
  const nav = async (n) => {
    await Promise.all([page.waitForURL((u) => u.searchParams.get('page') === String(n)), page.click(`#nav-${n}`)]);
    await page.waitForLoadState('load');
    await live();
  };

  await open(1);
  await page.mouse.move(200, 200);
  await page.click('#name');
  await page.keyboard.type('Ada Lovelace', { delay: 40 });
  await page.click('#card');
  await page.keyboard.type('5555 4444 3333 1111', { delay: 30 });
  await page.click('#password');
  await page.keyboard.type('hunter2!', { delay: 40 });
  await page.selectOption('#plan', 'plus');
  await page.click('#notes');
  await page.keyboard.type('Please call after 6 pm.', { delay: 30 });
  await sleep(300);

  await nav(2);
  for (let i = 0; i < 3; i++) {
    await page.click('#add');
    await sleep(200);
  }
  await page.mouse.move(400, 400);
  for (let i = 0; i < 4; i++) {
    await page.mouse.wheel(0, 400);
    await sleep(150);
  }
  await page.evaluate(() => window.scrollTo(0, 0));
  await sleep(300);

  await page.click('#native-open');
  await page.waitForSelector('#native-sheet:not([hidden])');
  await sleep(800);
  await page.click('#native-close');
  await page.evaluate(() => window.demo.recording.snapshotAcked());
  await sleep(300);

  await nav(1);
  await page.click('#submit');
  await page.waitForURL((u) => u.searchParams.get('page') === '3');
  await page.waitForLoadState('load');
  await live();
  await sleep(500);
  await context.close();
}

function writeFixture(events, base) {
  if (!Array.isArray(events) || events.length === 0) throw new Error('the recording holds no events');
  const t0 = events.find((e) => typeof e.timestamp === 'number')?.timestamp ?? 0;
  for (const e of events) if (typeof e.timestamp === 'number') e.timestamp = e.timestamp - t0 + EPOCH_MS;
  // The page's origin (a free port) as the README's relay has it, so that runs differ less and a
  // replay next to `relay serve --demo` on the default port finds the page's assets.
  const origin = new URL(base).origin;
  const text = `[\n${events.map((e) => JSON.stringify(e)).join(',\n')}\n]\n`.split(origin).join('http://127.0.0.1:8080');
  const kinds = {};
  for (const e of events) kinds[e.type] = (kinds[e.type] || 0) + 1;
  // (The name is shown as text on the confirmation page, as the shop does; inputs are masked.)
  for (const leak of ['3333 1111', 'hunter2', '6 pm']) {
    if (text.includes(leak)) throw new Error(`the recording shows "${leak}" unmasked: is the relay's mask policy still \`inputs\`?`);
  }
  if (Buffer.byteLength(text) > MAX_BYTES) throw new Error(`the recording is ${Buffer.byteLength(text)} bytes, more than ${MAX_BYTES}`);
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, text);
  console.log(`wrote ${OUT}: ${events.length} events (by rrweb type ${JSON.stringify(kinds)}), ${Buffer.byteLength(text)} bytes`);
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`record-fixture: ${e.stack || e}`);
    process.exit(1);
  },
);
