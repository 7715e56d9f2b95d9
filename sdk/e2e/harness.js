// End-to-end harness: a private redis-server, three `relay serve --redis-url … --demo` nodes, a
// `relay compactor`, and nginx generated from deploy/nginx/ in front of them, all on free loopback
// ports; Chromium (Debian's /usr/bin/chromium) driven by playwright-core; capture of every
// WebSocket frame a page sends or receives (JSON and MessagePack decoded). Everything started here
// is killed when the process exits, and the temporary directory is removed.
//
// nginx routes (see nginxConf):
//   /ws            the deploy/nginx room-affinity upstream (hash $arg_room consistent), as deployed
//   /node/N/ws     pinned to node N, the other nodes as `backup`: a page can be placed on node N
//                  while still going through nginx, and reconnects to a surviving node when N dies
//   /demo/         the demo pages and /demo/token, from any live node
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decode as msgpackDecode } from '@msgpack/msgpack';

const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '../..');
export const RELAY_BIN = process.env.RELAY_BIN || path.join(ROOT, 'target/debug/relay');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const NGINX = process.env.NGINX || '/usr/sbin/nginx';
export const REDIS_SERVER = process.env.REDIS_SERVER || 'redis-server';
export const SECRET = 'e2e-secret-0123456789abcdef0123456789abcdef';
/** The demo pages (`relay serve --demo-dir`): sdk/demo/dist, built by ensureDemoBuilt. */
export const DEMO_DIR = process.env.E2E_DEMO_DIR || path.join(ROOT, 'sdk/demo/dist');
/** How long the agent's view may take to converge ("within a few seconds"). */
export const CONVERGE_MS = Number(process.env.E2E_CONVERGE_MS || 8000);

const started = new Set(); // live child processes
const tempDirs = new Set();

function cleanupSync() {
  for (const child of started) {
    try {
      process.kill(child.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  started.clear();
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}
process.on('exit', cleanupSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    cleanupSync();
    process.exit(128 + (os.constants.signals[sig] || 1));
  });
}

export function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `cond` (sync or async) until it returns a truthy value, which is returned. On timeout
 * throws an Error with `message` and the last value / error seen (`describe(last)` if given).
 */
export async function waitFor(cond, { timeout = CONVERGE_MS, interval = 100, message = 'condition', describe } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  let lastErr;
  for (;;) {
    try {
      last = await cond();
      lastErr = undefined;
      if (last) return last;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() >= deadline) {
      let detail = lastErr ? `last error: ${lastErr.stack || lastErr}` : `last value: ${describe ? describe(last) : JSON.stringify(last)}`;
      throw new Error(`timed out after ${timeout} ms waiting for ${message}\n${detail}`);
    }
    await sleep(interval);
  }
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function httpGet(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return { status: res.status, body: await res.text() };
}

/** A child process whose stdout and stderr go to `logFile`. */
class Proc {
  constructor(name, cmd, args, { env = {}, logFile }) {
    this.name = name;
    this.cmd = cmd;
    this.args = args;
    this.env = env;
    this.logFile = logFile;
    this.child = null;
    this.exit = null;
  }

  start() {
    const fd = fs.openSync(this.logFile, 'a');
    fs.writeSync(fd, `\n=== ${new Date().toISOString()} start: ${this.cmd} ${this.args.join(' ')}\n`);
    const child = spawn(this.cmd, this.args, {
      env: { ...process.env, ...this.env },
      stdio: ['ignore', fd, fd],
    });
    fs.closeSync(fd);
    this.child = child;
    this.exit = null;
    started.add(child);
    child.on('exit', (code, signal) => {
      started.delete(child);
      this.exit = { code, signal };
    });
    child.on('error', (e) => {
      started.delete(child);
      this.exit = { error: String(e) };
    });
    return this;
  }

  get running() {
    return this.child && !this.exit;
  }

  /** Sends `signal` and waits (up to `ms`) for the process to end; SIGKILL after that. */
  async stop(signal = 'SIGTERM', ms = 5000) {
    const child = this.child;
    if (!child || this.exit) return;
    const done = new Promise((r) => child.once('exit', r));
    try {
      process.kill(child.pid, signal);
    } catch {
      return;
    }
    const timer = sleep(ms).then(() => 'timeout');
    if ((await Promise.race([done, timer])) === 'timeout') {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
      await done;
    }
  }

  tail(lines = 40) {
    try {
      const text = fs.readFileSync(this.logFile, 'utf8');
      return text.split('\n').slice(-lines).join('\n');
    } catch (e) {
      return `(no log: ${e.message})`;
    }
  }
}

/** The deploy/nginx configuration with our upstreams, listen port, pinned and demo routes. */
export function nginxConf({ template = 'assist-relay-room-affinity.conf', dir, listen, nodes }) {
  const text = fs.readFileSync(path.join(ROOT, 'deploy/nginx', template), 'utf8');
  const server = (addr, extra = '') => `    server ${addr} max_fails=1 fail_timeout=10s${extra};\n`;
  // The proxy directives of the template's `location = /ws` block, reused by the extra routes.
  const wsBlock = /location = \/ws \{\n([\s\S]*?)\n    \}/.exec(text);
  if (!wsBlock) throw new Error(`${template}: no "location = /ws { … }" block`);
  const proxyBody = wsBlock[1]
    .split('\n')
    .filter((l) => !/^\s*proxy_pass\s/.test(l))
    .join('\n');
  let out = '';
  let skipping = false;
  let sawListen = false;
  for (const line of text.split('\n')) {
    if (line.includes('# BEGIN upstream servers')) {
      skipping = true;
      for (const n of nodes) out += server(n);
      continue;
    }
    if (line.includes('# END upstream servers')) {
      skipping = false;
      continue;
    }
    if (skipping) continue;
    if (line.trim() === 'listen 8080;') {
      out += `    listen 127.0.0.1:${listen};\n`;
      sawListen = true;
      continue;
    }
    if (line.trim() === 'server {') {
      // Pinned upstreams: node N first, the others only when N is down.
      nodes.forEach((n, i) => {
        out += `upstream assist_relay_node${i + 1} {\n`;
        out += server(n);
        nodes.forEach((m, j) => {
          if (j !== i) out += server(m, ' backup');
        });
        out += '}\n\n';
      });
    }
    if (line.includes('# Admin endpoints stay on each node')) {
      nodes.forEach((_, i) => {
        out += `    location = /node/${i + 1}/ws {\n        proxy_pass http://assist_relay_node${i + 1}/ws;\n${proxyBody}\n    }\n\n`;
      });
      out +=
        '    location /demo/ {\n        proxy_pass http://assist_relay;\n        proxy_http_version 1.1;\n' +
        '        proxy_set_header Host $host;\n        proxy_connect_timeout 2s;\n        proxy_next_upstream error timeout;\n    }\n\n';
    }
    out += line + '\n';
  }
  if (!sawListen) throw new Error(`${template}: no "listen 8080;" line`);
  fs.writeFileSync(path.join(dir, 'relay.conf'), out);
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  // One process (master_process off): SIGKILL on exit leaves no orphaned worker behind.
  const main =
    `master_process off;\ndaemon off;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log warn;\n` +
    `events { worker_connections 1024; }\nhttp {\n  access_log ${dir}/access.log;\n` +
    `  client_body_temp_path ${dir}/tmp;\n  proxy_temp_path ${dir}/tmp;\n  fastcgi_temp_path ${dir}/tmp;\n` +
    `  uwsgi_temp_path ${dir}/tmp;\n  scgi_temp_path ${dir}/tmp;\n  include ${dir}/relay.conf;\n}\n`;
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, main);
  return conf;
}

/**
 * Starts redis-server, `nodes` relay nodes (cluster mode, --demo: with --demo-unsafe-public, which
 * cluster mode needs), a compactor and nginx.
 * `nodeArgs`: extra `relay serve` arguments for every node.
 */
export async function startCluster({ nodes: nodeCount = 3, nodeArgs = [], demo = true } = {}) {
  if (!fs.existsSync(RELAY_BIN)) throw new Error(`relay binary not found: ${RELAY_BIN} (cargo build -p assist-relay --bin relay, or set RELAY_BIN)`);
  if (demo) ensureDemoBuilt();
  const dir = tempDir('assist-e2e-');
  const logLevel = process.env.NODE_LOG || 'info';
  const c = { dir, nodes: [], archiveDir: path.join(dir, 'archive') };
  fs.mkdirSync(c.archiveDir);

  // Redis, never on 6379.
  let redisPort;
  do redisPort = await freePort();
  while (redisPort === 6379);
  c.redisUrl = `redis://127.0.0.1:${redisPort}`;
  c.redis = new Proc('redis', REDIS_SERVER, ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    logFile: path.join(dir, 'redis.log'),
  }).start();
  await waitFor(() => portOpen(redisPort), { timeout: 10000, message: 'redis-server to listen' });

  for (let i = 0; i < nodeCount; i++) {
    const port = await freePort();
    const admin = await freePort();
    const args = ['serve', '--listen', `127.0.0.1:${port}`, '--admin-listen', `127.0.0.1:${admin}`, '--redis-url', c.redisUrl, ...(demo ? ['--demo', '--demo-unsafe-public', '--demo-dir', DEMO_DIR] : []), '--log-format', 'pretty',
      // The tests compare the agent's replay with the customer's page, typed values included:
      // `passwords` explicitly (the node default, `inputs`, masks them); the masking test's
      // token asks for `inputs`.
      '--mask-policy', 'passwords', ...nodeArgs];
    const proc = new Proc(`node${i + 1}`, RELAY_BIN, args, {
      env: { RELAY_JWT_SECRET: SECRET, RELAY_LOG: logLevel, NO_COLOR: '1' },
      logFile: path.join(dir, `node${i + 1}.log`),
    });
    c.nodes.push({ index: i + 1, port, admin, addr: `127.0.0.1:${port}`, proc });
  }
  for (const n of c.nodes) n.proc.start();
  for (const n of c.nodes) await waitNodeReady(n);

  const compAdmin = await freePort();
  c.compactor = new Proc(
    'compactor',
    RELAY_BIN,
    ['compactor', '--redis-url', c.redisUrl, '--archive-dir', c.archiveDir, '--admin-listen', `127.0.0.1:${compAdmin}`, '--log-format', 'pretty'],
    { env: { RELAY_LOG: logLevel, NO_COLOR: '1' }, logFile: path.join(dir, 'compactor.log') },
  ).start();

  const nginxDir = path.join(dir, 'nginx');
  fs.mkdirSync(nginxDir);
  c.nginxPort = await freePort();
  const conf = nginxConf({ dir: nginxDir, listen: c.nginxPort, nodes: c.nodes.map((n) => n.addr) });
  c.nginx = new Proc('nginx', NGINX, ['-p', nginxDir, '-c', conf], { logFile: path.join(nginxDir, 'stderr.log') }).start();
  c.nginx.errorLog = path.join(nginxDir, 'error.log');
  await waitFor(async () => {
    if (c.nginx.exit) throw new Error(`nginx exited ${JSON.stringify(c.nginx.exit)}: ${c.nginx.tail()}`);
    return portOpen(c.nginxPort);
  }, {
    timeout: 10000,
    message: 'nginx to listen',
  });
  c.base = `http://127.0.0.1:${c.nginxPort}`;
  c.wsBase = `ws://127.0.0.1:${c.nginxPort}`;
  /** WebSocket URL through nginx, pinned to node `n` (1-based), or room-affinity when n is absent. */
  c.wsUrl = (n) => (n ? `${c.wsBase}/node/${n}/ws` : `${c.wsBase}/ws`);

  c.killNode = async (n) => {
    await c.nodes[n - 1].proc.stop('SIGKILL');
  };
  c.restartNode = async (n) => {
    const node = c.nodes[n - 1];
    if (node.proc.running) await node.proc.stop('SIGKILL');
    node.proc.start();
    await waitNodeReady(node);
  };
  /** Open WebSocket connections on node n (its /metrics), or null when it does not answer. */
  c.connections = async (n) => {
    try {
      const { body } = await httpGet(`http://127.0.0.1:${c.nodes[n - 1].admin}/metrics`);
      return body
        .split('\n')
        .filter((l) => l.startsWith('relay_connections'))
        .map((l) => Number(l.trim().split(/\s+/).pop()))
        .filter((x) => Number.isFinite(x))
        .reduce((a, b) => a + b, 0);
    } catch {
      return null;
    }
  };
  /** A token minted by `relay token` (for what the demo token endpoint does not offer, e.g. mask). */
  c.token = ({ room, role, sub, mask, ttl = 3600 }) =>
    execFileSync(RELAY_BIN, ['token', '--room', room, '--role', role, '--sub', sub, '--ttl', String(ttl), ...(mask ? ['--mask', mask] : [])], {
      env: { ...process.env, RELAY_JWT_SECRET: SECRET },
      encoding: 'utf8',
    }).trim();
  c.diagnostics = (lines = 30) => {
    let out = '';
    for (const p of [...c.nodes.map((n) => n.proc), c.compactor, c.redis]) {
      out += `\n--- ${p.name} (${p.running ? 'running' : `exited ${JSON.stringify(p.exit)}`}) log tail ---\n${p.tail(lines)}\n`;
    }
    try {
      out += `\n--- nginx error.log tail ---\n${fs.readFileSync(c.nginx.errorLog, 'utf8').split('\n').slice(-lines).join('\n')}\n`;
    } catch {
      /* none */
    }
    return out;
  };
  c.stop = async () => {
    await c.nginx.stop('SIGTERM', 3000);
    await Promise.all(c.nodes.map((n) => n.proc.stop('SIGTERM', 3000)));
    await c.compactor.stop('SIGTERM', 3000);
    await c.redis.stop('SIGTERM', 3000);
    if (!process.env.E2E_KEEP_TMP) {
      fs.rmSync(dir, { recursive: true, force: true });
      tempDirs.delete(dir);
    }
  };
  return c;
}

/**
 * The demo pages to serve: E2E_DEMO_DIR as it is, or sdk/demo built afresh (`npm run build`, after
 * `npm ci` when its node_modules is missing), so that the tests run against the current sources.
 */
export function ensureDemoBuilt() {
  const pages = ['customer.html', 'agent.html'];
  if (process.env.E2E_DEMO_DIR) {
    if (!pages.every((f) => fs.existsSync(path.join(DEMO_DIR, f)))) throw new Error(`E2E_DEMO_DIR=${DEMO_DIR} has no ${pages.join(', ')}`);
    return;
  }
  if (ensureDemoBuilt.done) return;
  const demoSrc = path.join(ROOT, 'sdk/demo');
  if (!fs.existsSync(path.join(demoSrc, 'package.json'))) throw new Error(`no demo pages: ${demoSrc}/package.json is missing`);
  const opts = { cwd: demoSrc, stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000, encoding: 'utf8' };
  try {
    if (!fs.existsSync(path.join(demoSrc, 'node_modules'))) execFileSync('npm', ['ci', '--no-audit', '--no-fund'], opts);
    execFileSync('npm', ['run', 'build'], opts);
  } catch (e) {
    throw new Error(`building sdk/demo (npm ci && npm run build) failed: ${e.message}\n${e.stdout || ''}\n${e.stderr || ''}`);
  }
  if (!pages.every((f) => fs.existsSync(path.join(DEMO_DIR, f)))) throw new Error(`sdk/demo built, but ${DEMO_DIR} has no ${pages.join(', ')}`);
  ensureDemoBuilt.done = true;
}

async function waitNodeReady(node) {
  await waitFor(
    async () => {
      if (node.proc.exit) throw new Error(`node${node.index} exited ${JSON.stringify(node.proc.exit)}:\n${node.proc.tail(20)}`);
      if (!(await portOpen(node.admin))) return false;
      return (await httpGet(`http://127.0.0.1:${node.admin}/readyz`)).status === 200;
    },
    { timeout: 20000, interval: 100, message: `node${node.index} /readyz`, describe: () => node.proc.tail(10) },
  );
}

// ---- Chromium ----

export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found (apt-get install -y chromium)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'],
    timeout: 30000,
  });
}

/** A readable rendering of a WebSocket payload (a string, or a MessagePack Buffer decoded). */
export function decodeFrame(payload) {
  if (typeof payload === 'string') {
    try {
      return { kind: 'text', frame: JSON.parse(payload), text: payload };
    } catch {
      return { kind: 'text', frame: null, text: payload };
    }
  }
  const buf = Buffer.from(payload);
  try {
    const frame = msgpackDecode(buf);
    // `event` and chunk `data` are bin holding JSON text: render them as text.
    const render = (v) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v);
    const plain = {};
    for (const [k, v] of Object.entries(frame)) plain[k] = render(v);
    if (typeof plain.event === 'string') {
      try {
        plain.event = JSON.parse(plain.event);
      } catch {
        /* keep text */
      }
    }
    // A chunk's slice may be cut inside a UTF-8 sequence: keep its bytes for reassembly.
    const dataBytes = frame.data instanceof Uint8Array ? Buffer.from(frame.data) : undefined;
    return { kind: 'binary', frame: plain, text: JSON.stringify(plain), dataBytes };
  } catch (e) {
    return { kind: 'binary', frame: null, text: buf.toString('utf8'), error: String(e) };
  }
}

/**
 * Records what a page does: every WebSocket frame (both directions, decoded), console messages,
 * page errors, failed requests. `cap.received()` lists received frames; `cap.dump()` renders the
 * last of everything for a failure report.
 */
export function capture(page, label) {
  const cap = { label, frames: [], console: [], errors: [], sockets: [] };
  page.on('websocket', (ws) => {
    const sock = { url: ws.url(), opened: Date.now(), closed: null };
    cap.sockets.push(sock);
    ws.on('framereceived', ({ payload }) => cap.frames.push({ dir: 'recv', t: Date.now(), url: sock.url, raw: payload, ...decodeFrame(payload) }));
    ws.on('framesent', ({ payload }) => cap.frames.push({ dir: 'sent', t: Date.now(), url: sock.url, raw: payload, ...decodeFrame(payload) }));
    ws.on('close', () => (sock.closed = Date.now()));
    ws.on('socketerror', (e) => (sock.error = String(e)));
  });
  page.on('console', (m) => cap.console.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => cap.errors.push(String(e.stack || e)));
  page.on('requestfailed', (r) => cap.errors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  cap.received = () => cap.frames.filter((f) => f.dir === 'recv');
  cap.receivedOfType = (type) => cap.received().filter((f) => f.frame && f.frame.type === type);
  cap.dump = (n = 15) => {
    const short = (s) => (s.length > 300 ? `${s.slice(0, 300)}… (${s.length} chars)` : s);
    let out = `\n--- ${label}: ${cap.frames.length} frames, sockets ${JSON.stringify(cap.sockets)} ---\n`;
    for (const f of cap.frames.slice(-n)) out += `${new Date(f.t).toISOString()} ${f.dir} ${f.kind} ${short(f.text)}\n`;
    if (cap.console.length) out += `--- ${label} console (last ${n}) ---\n${cap.console.slice(-n).join('\n')}\n`;
    if (cap.errors.length) out += `--- ${label} page errors ---\n${cap.errors.slice(-n).join('\n')}\n`;
    return out;
  };
  return cap;
}
