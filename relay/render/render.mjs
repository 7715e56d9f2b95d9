// The renderer behind `relay render` (relay/src/render): replays a recording with rrweb's
// Replayer in headless Chromium and writes one PNG per video frame to standard output, for ffmpeg
// to encode (`-f image2pipe -c:v png`).
//
// Usage: node render.mjs JOB.json
//
// JOB.json (written by the relay; the plan is computed there, this script only executes it):
//   events:   path of the recording's rrweb events (a JSON array)
//   chromium: path of the Chromium binary
//   width, height: the viewport (the video size); scale: CSS scale of the replay inside it
//   frames:   [[offset_ms, caption_index], ...]: per frame, the replay time (ms after the first
//             event) and the caption to overlay (-1: none)
//   captions: caption texts
//   virtual_dom: false to apply events straight to the page (large recordings; see below)
//
// Determinism: the replay never plays on a clock. For each frame the Replayer is paused at the
// frame's time (`pause(offset)` applies every event before it, synchronously), then the page is
// captured. CSS animations and transitions are switched off inside the replay and on the mouse
// cursor, the mouse tail is off, and the network is blocked (a recording refers to its site's
// stylesheets and images; what it does not carry inline is not fetched), so the same recording
// gives the same frames. A frame with no event since the previous one and the same caption is the
// previous frame again (its bytes are repeated, not captured).
//
// Exit codes: 0 done; 2 bad job; 3 the replay failed. The reason is the last line on stderr.
// The script stops (and closes Chromium) when its standard input closes: the relay that started
// it died.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

// rrweb's package.json exports no dist paths; its directory is beside this script's.
const rrwebDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_modules/rrweb/dist');

function fail(code, why) {
  process.stderr.write(`${why}\n`);
  process.exit(code);
}

const jobPath = process.argv[2];
if (!jobPath) fail(2, 'usage: node render.mjs JOB.json');
let job;
try {
  job = JSON.parse(fs.readFileSync(jobPath, 'utf8'));
} catch (e) {
  fail(2, `cannot read the job ${jobPath}: ${e.message}`);
}
const eventsJson = fs.readFileSync(job.events, 'utf8');

// The relay died (our stdin closed): stop at once; playwright kills its browser on exit.
process.stdin.on('close', () => process.exit(4));
process.stdin.resume();
process.stdout.on('error', () => process.exit(4)); // ffmpeg died

const NO_MOTION = [
  '*, *::before, *::after { animation: none !important; transition: none !important; caret-color: transparent !important; }',
];

const page_html = `<!doctype html><html><head><meta charset="utf-8"><style>
html, body { margin: 0; padding: 0; background: #fff; overflow: hidden; }
#stage { position: absolute; left: 0; top: 0; transform-origin: 0 0; }
.replayer-mouse, .replayer-mouse::after { transition: none !important; animation: none !important; }
.replayer-wrapper > iframe { border: 0; }
#caption { position: fixed; left: 0; right: 0; bottom: 24px; text-align: center; display: none; z-index: 10; }
#caption span { font: 600 16px/1.4 sans-serif; color: #fff; background: rgba(0,0,0,.78);
  padding: 6px 14px; border-radius: 6px; }
</style></head><body><div id="stage"></div><div id="caption"><span></span></div></body></html>`;

async function main() {
  const browser = await chromium.launch({
    executablePath: job.chromium,
    headless: true,
    args: ['--disable-gpu', '--font-render-hinting=none', '--disable-lcd-text', '--hide-scrollbars', '--mute-audio'],
  });
  try {
    const context = await browser.newContext({
      viewport: { width: job.width, height: job.height },
      deviceScaleFactor: 1,
      javaScriptEnabled: true,
      offline: true,
    });
    await context.route('**/*', (route) => route.abort());
    const page = await context.newPage();
    await page.setContent(page_html);
    await page.addStyleTag({ path: path.join(rrwebDir, 'style.css') });
    await page.addScriptTag({ path: path.join(rrwebDir, 'rrweb.umd.min.cjs') });
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.evaluate(
      ({ eventsJson, scale, rules, useVirtualDom }) => {
        const events = JSON.parse(eventsJson);
        const stage = document.getElementById('stage');
        stage.style.transform = `scale(${scale})`;
        window.replayer = new rrweb.Replayer(events, {
          root: stage,
          skipInactive: false,
          showWarning: false,
          showDebug: false,
          mouseTail: false,
          triggerFocus: false,
          // rrweb's default (a virtual DOM, diffed into the page on every seek) matches its
          // player exactly, but on a page of tens of thousands of elements each frame's diff
          // costs seconds: the relay turns it off for large recordings (`virtual_dom`).
          useVirtualDom,
          insertStyleRules: rules,
        });
        window.showCaption = (text) => {
          const c = document.getElementById('caption');
          c.style.display = text ? 'block' : 'none';
          c.firstChild.textContent = text || '';
        };
      },
      { eventsJson, scale: job.scale, rules: NO_MOTION, useVirtualDom: job.virtual_dom !== false },
    );
    // Sorted as the Replayer sorts them: a frame changes only if an event falls before its time.
    const times = JSON.parse(eventsJson)
      .map((e) => e.timestamp)
      .sort((a, b) => a - b);
    const base = times.length ? times[0] : 0;
    const cdp = await context.newCDPSession(page);
    let last = null;
    let lastOffset = -1;
    let lastCaption = -2;
    let next = 0; // index of the first event not yet applied
    for (const [offset, caption] of job.frames) {
      let changed = last === null || caption !== lastCaption || offset < lastOffset;
      while (next < times.length && times[next] - base < offset) {
        next += 1;
        changed = true;
      }
      if (changed) {
        await page.evaluate(
          ({ offset, text }) => {
            window.replayer.pause(offset);
            window.showCaption(text);
          },
          { offset, text: caption >= 0 ? job.captions[caption] : '' },
        );
        const shot = await cdp.send('Page.captureScreenshot', { format: 'png', optimizeForSpeed: true });
        last = Buffer.from(shot.data, 'base64');
      }
      lastOffset = offset;
      lastCaption = caption;
      if (!process.stdout.write(last)) {
        await new Promise((r) => process.stdout.once('drain', r));
      }
    }
    if (errors.length) process.stderr.write(`page errors (replay continued): ${errors.slice(0, 3).join('; ')}\n`);
  } finally {
    await browser.close().catch(() => {});
  }
}

main().then(
  () => process.stdout.end(() => process.exit(0)),
  (e) => fail(3, `replay failed: ${e && e.message ? e.message.split('\n')[0] : e}`),
);
