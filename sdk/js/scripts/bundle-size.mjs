// Bundle size per entry point (`npm run size`): each entry is bundled for the browser by esbuild
// (ESM, minified, everything it imports included: @msgpack/msgpack, rrweb), then gzipped. Two
// rows per entry: a page that uses all of the entry's exports, and a typical page that imports
// a few names (what tree-shaking leaves). The metafile says how much of each bundle is rrweb.
// `--json` prints the rows as JSON. Only reads; writes nothing.

import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const pages = [
  { entry: '.', page: 'all exports', code: `export * from '@assist-relay/sdk';` },
  { entry: './record', page: 'all exports', code: `export * from '@assist-relay/sdk/record';` },
  {
    entry: './record',
    page: 'customer: client, startRecording, GuideOverlay',
    code: `import { RelayClient, startRecording, GuideOverlay } from '@assist-relay/sdk/record'; window.sdk = { RelayClient, startRecording, GuideOverlay };`,
  },
  { entry: './replay', page: 'all exports', code: `export * from '@assist-relay/sdk/replay';` },
  {
    entry: './replay',
    page: 'agent: client, LiveView, GuideSender, attachGuide',
    code: `import { RelayClient, LiveView, GuideSender, attachGuide } from '@assist-relay/sdk/replay'; window.sdk = { RelayClient, LiveView, GuideSender, attachGuide };`,
  },
  { entry: './chat', page: 'all exports', code: `export * from '@assist-relay/sdk/chat';` },
  {
    entry: './chat',
    page: 'chat only: client, ChatPanel',
    code: `import { RelayClient, ChatPanel } from '@assist-relay/sdk/chat'; window.sdk = { RelayClient, ChatPanel };`,
  },
  {
    entry: '.',
    page: 'chat only, from the root',
    code: `import { RelayClient, ChatPanel } from '@assist-relay/sdk'; window.sdk = { RelayClient, ChatPanel };`,
  },
];

const rows = [];
for (const p of pages) {
  const result = await build({
    stdin: { contents: p.code, resolveDir: pkgDir, sourcefile: 'page.js', loader: 'js' },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2020'],
    minify: true,
    write: false,
    metafile: true,
    legalComments: 'none',
    logLevel: 'error',
  });
  const code = result.outputFiles[0].contents;
  const [output] = Object.values(result.metafile.outputs);
  let rrweb = 0;
  for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
    if (/node_modules\/(rrweb|rrweb-snapshot|rrdom|@rrweb\/)/.test(input)) rrweb += bytesInOutput;
  }
  rows.push({
    entry: p.entry === '.' ? '@assist-relay/sdk' : `@assist-relay/sdk/${p.entry.slice(2)}`,
    page: p.page,
    minified: code.length,
    gzip: gzipSync(code, { level: 9 }).length,
    rrwebMinified: rrweb,
  });
}

if (process.argv.includes('--json')) {
  console.log(JSON.stringify(rows, null, 2));
} else {
  const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
  console.log('| import | page | minified | min + gzip | of which rrweb (min) |');
  console.log('|---|---|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| \`${r.entry}\` | ${r.page} | ${kb(r.minified)} | ${kb(r.gzip)} | ${kb(r.rrwebMinified)} |`);
  }
}
