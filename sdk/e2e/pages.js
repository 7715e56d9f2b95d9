// Driving the demo pages (`relay serve --demo`: /demo/customer.html, /demo/agent.html) in a
// cluster started by harness.js. Each participant gets its own browser context (own storage, as
// on another machine); every page's WebSocket frames, console and errors are captured.
import fs from 'node:fs';
import path from 'node:path';
import { capture, waitFor, CONVERGE_MS } from './harness.js';
import { summarize, diff } from './dom.js';

/** Everything a scenario opened, for closing and for the failure report. */
export class Scenario {
  constructor(cluster, browser, name) {
    this.cluster = cluster;
    this.browser = browser;
    this.name = name;
    this.room = `${name}-${Date.now().toString(36)}`;
    this.contexts = [];
    this.pages = []; // {label, page, cap}
  }

  async newPage(label, { viewport = { width: 1100, height: 800 }, ...options } = {}) {
    const context = await this.browser.newContext({ viewport, ...options });
    this.contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(15000);
    const cap = capture(page, label);
    const p = { label, page, cap, context };
    this.pages.push(p);
    return p;
  }

  url(kind, { sub, node, codec, page, room = this.room, extra = {} }) {
    const q = new URLSearchParams({ room, sub });
    q.set('relay', this.cluster.wsUrl(node));
    if (codec) q.set('codec', codec);
    if (page) q.set('page', String(page));
    for (const [k, v] of Object.entries(extra)) q.set(k, v);
    return `${this.cluster.base}/demo/${kind}.html?${q}`;
  }

  /** The customer page, pinned to node `node` through nginx. Resolves when it is live. */
  async customer({ sub = 'cust', node = 1, codec, page = 1, token, room, viewport = { width: 1000, height: 760 }, context = {} } = {}) {
    const p = await this.newPage(`customer ${sub}`, { viewport, ...context });
    if (token) await routeToken(p.page, token);
    await p.page.goto(this.url('customer', { sub, node, codec, page, room }));
    await waitStatus(p.page, 'live');
    return p;
  }

  /** The agent console, pinned to node `node`. Resolves when it is live (or as `until`). */
  async agent({ sub = 'agent', node = 2, codec, room, extra, until = ['live', 'waiting', 'native'], viewport = { width: 1400, height: 900 } } = {}) {
    const p = await this.newPage(`agent ${sub}`, { viewport });
    await p.page.goto(this.url('agent', { sub, node, codec, room, extra }));
    await waitStatus(p.page, until);
    return p;
  }

  /** Closes every context; returns the failure report when `error` is given. */
  async close(error) {
    let report = '';
    if (error) {
      report += `\n===== diagnostics for scenario ${this.name} (room ${this.room}) =====\n`;
      for (const p of this.pages) {
        try {
          report += `\n--- ${p.label}: url ${p.page.url()} status ${JSON.stringify(await status(p.page))}\n`;
        } catch {
          /* closed */
        }
        report += p.cap.dump(20);
        const shot = artifactPath(`${this.name}-${p.label.replace(/\W+/g, '_')}.png`);
        try {
          await p.page.screenshot({ path: shot, timeout: 3000 });
          report += `screenshot: ${shot}\n`;
        } catch {
          /* closed */
        }
      }
      for (let i = 1; i <= this.cluster.nodes.length; i++) report += `node${i} connections: ${await this.cluster.connections(i)}\n`;
      report += this.cluster.diagnostics(25);
    }
    await Promise.all(this.contexts.map((c) => c.close().catch(() => {})));
    return report;
  }
}

/** Runs `fn(scenario)`; on failure the error carries the diagnostics (frames, logs). */
export async function run(cluster, browser, name, fn) {
  const s = new Scenario(cluster, browser, name);
  try {
    await fn(s);
  } catch (e) {
    const report = await s.close(e);
    e.message += report;
    throw e;
  }
  await s.close();
}

const ARTIFACTS = process.env.E2E_ARTIFACTS || path.join(path.dirname(new URL(import.meta.url).pathname), 'artifacts');
export function artifactPath(name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}

/** Answers the page's /demo/token requests with `token` (e.g. one carrying a `mask` claim). */
async function routeToken(page, token) {
  await page.route('**/demo/token?*', (route) => route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ token }) }));
}

export async function status(page) {
  return page.evaluate(() => {
    const el = document.querySelector('#status');
    if (!el) return null;
    return (el.dataset.status || el.textContent || '').trim().toLowerCase();
  });
}

export async function waitStatus(page, want, timeout = 15000) {
  const wants = Array.isArray(want) ? want : [want];
  await page.waitForFunction(
    (wants) => {
      const el = document.querySelector('#status');
      const s = el && (el.dataset.status || el.textContent || '').trim().toLowerCase();
      return wants.some((w) => s === w || (s && s.split(/[\s·:,(]/)[0] === w));
    },
    wants,
    { timeout },
  );
}

export const customerDom = (page) => page.evaluate(summarize, { target: 'document' });
export const replayDom = (page) => page.evaluate(summarize, { target: 'replay' });

/**
 * Waits until the agent's replay matches the customer's document (elements, text, and, unless
 * told otherwise, form values and scroll offsets).
 */
export async function converged(customer, agent, { timeout = CONVERGE_MS, values = true, scroll = false, what = 'replay to match the customer page' } = {}) {
  let last = [];
  try {
    await waitFor(
      async () => {
        const [a, b] = await Promise.all([customerDom(customer.page), replayDom(agent.page)]);
        last = diff(a, b, { values, scroll });
        return last.length === 0;
      },
      { timeout, interval: 150, message: what },
    );
  } catch (e) {
    e.message += `\ndifferences (${agent.label} vs ${customer.label}):\n  ${last.join('\n  ')}`;
    throw e;
  }
}

/** Sends a chat line from a demo page (either role). */
export async function sendChat(p, text) {
  await p.page.fill('#chat-input', text);
  await p.page.click('#chat-send');
}

/** Waits until `#chat-log` of the page shows `text` (from `from`, when the page marks senders). */
export async function waitChat(p, text, { from, timeout = CONVERGE_MS } = {}) {
  await p.page.waitForFunction(
    ([text, from]) => {
      const log = document.querySelector('#chat-log');
      if (!log) return false;
      const msgs = [...log.querySelectorAll('.chat-msg')];
      if (msgs.length === 0) return log.textContent.includes(text);
      return msgs.some((m) => m.textContent.includes(text) && (!from || !m.dataset.from || m.dataset.from === from));
    },
    [text, from],
    { timeout },
  );
}

/** Text of the replay iframe's body ('' when none). */
export function replayText(page) {
  return page.evaluate(() => {
    const d = document.querySelector('#replay iframe')?.contentDocument;
    return d && d.body ? d.body.textContent.replace(/\s+/g, ' ').trim() : '';
  });
}

/** Navigates the customer with one of the demo's nav links (a real page load) and waits for live. */
export async function navigate(customer, n) {
  const before = customer.page.url();
  await Promise.all([customer.page.waitForURL((u) => u.href !== before && (u.searchParams.get('page') === String(n) || u.pathname.includes(String(n)))), customer.page.click(`#nav-${n}`)]);
  await customer.page.waitForLoadState('load');
  await waitStatus(customer.page, 'live');
}
