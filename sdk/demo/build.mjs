// Builds the demo pages into dist/ (served by `relay serve --demo`): bundles src/customer.js and
// src/agent.js with the SDK from ../js/src and rrweb and @msgpack/msgpack from this package's
// node_modules (one copy of each), and copies the HTML pages. Usage: npm ci && npm run build.

import { build } from 'esbuild';
import { cpSync, mkdirSync, rmSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'src');
const dist = join(here, 'dist');
const sdk = resolve(here, '../js/src/index.js');

rmSync(dist, { recursive: true, force: true });
if (process.argv.includes('--clean')) process.exit(0);
mkdirSync(join(dist, 'assets'), { recursive: true });

// The SDK's own imports of rrweb and @msgpack/msgpack resolve here, never to ../js/node_modules.
const singleCopies = {
  name: 'single-copies',
  setup(b) {
    b.onResolve({ filter: /^@assist-relay\/sdk$/ }, () => ({ path: sdk }));
    b.onResolve({ filter: /^(rrweb|@msgpack\/msgpack)(\/.*)?$/ }, (args) => {
      if (args.pluginData === 'single') return undefined;
      return b.resolve(args.path, { resolveDir: here, kind: args.kind, pluginData: 'single' });
    });
  },
};

const result = await build({
  entryPoints: { customer: join(src, 'customer.js'), agent: join(src, 'agent.js') },
  outdir: join(dist, 'assets'),
  bundle: true,
  format: 'esm',
  splitting: true,
  target: ['es2020'],
  minify: true,
  sourcemap: 'linked',
  legalComments: 'linked',
  metafile: true,
  logLevel: 'info',
  plugins: [singleCopies],
});

for (const f of readdirSync(src)) {
  if (f.endsWith('.html') || f.endsWith('.css')) {
    cpSync(join(src, f), join(dist, f.endsWith('.css') ? join('assets', f) : f));
  }
}
const inputs = Object.keys(result.metafile.inputs);
const rrwebCopies = new Set(inputs.filter((p) => p.includes('node_modules/rrweb/')).map((p) => p.split('node_modules/rrweb/')[0]));
if (rrwebCopies.size > 1) throw new Error(`rrweb bundled from several places: ${[...rrwebCopies].join(', ')}`);
console.log(`built ${dist}`);
