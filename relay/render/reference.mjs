// Reference screenshots for relay/tests/render.rs: rrweb's Replayer, as its documentation uses it,
// seeked straight to each time (a fresh Replayer per time, no frame stepping), captured by
// Playwright. The test compares them with the frames of the rendered video at the same times.
//
// The one presentational difference from the video is shared: the replay's iframe has no border.
//
// Usage: node reference.mjs EVENTS.json WIDTH HEIGHT OUT_DIR T1 [T2 ...]
//   writes OUT_DIR/<T>.png for each replay time T (ms after the first event)
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const rrwebDir = path.join(here, 'node_modules/rrweb/dist');
const [eventsPath, width, height, outDir, ...times] = process.argv.slice(2);
const eventsJson = fs.readFileSync(eventsPath, 'utf8');

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium' });
try {
  const context = await browser.newContext({ viewport: { width: Number(width), height: Number(height) }, offline: true });
  await context.route('**/*', (route) => route.abort());
  for (const t of times) {
    const page = await context.newPage();
    await page.setContent('<!doctype html><html><head><meta charset="utf-8"><style>html,body{margin:0;overflow:hidden} .replayer-wrapper > iframe{border:0}</style></head><body></body></html>');
    await page.addStyleTag({ path: path.join(rrwebDir, 'style.css') });
    await page.addScriptTag({ path: path.join(rrwebDir, 'rrweb.umd.min.cjs') });
    await page.evaluate(
      ({ eventsJson, t }) => {
        const replayer = new rrweb.Replayer(JSON.parse(eventsJson), { root: document.body, mouseTail: false });
        replayer.pause(t);
      },
      { eventsJson, t: Number(t) },
    );
    await page.waitForTimeout(500); // let the cursor's transition and fonts settle
    await page.screenshot({ path: path.join(outDir, `${t}.png`) });
    await page.close();
  }
} finally {
  await browser.close();
}
