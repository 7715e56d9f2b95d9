// The package as published: its types checked against the code, `npm pack`'s output (files,
// exports, types, publish metadata), are-the-types-wrong on the tarball, and the packed entry
// points imported from a clean node_modules (the `/chat` entry without rrweb installed).
// Needs the dev dependencies (npm ci); no network.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkgDir = path.resolve(here, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8'));
const bin = (name) => path.join(pkgDir, 'node_modules', '.bin', name);

let tmp;
let tarball;
/** @type {string[]} paths in the tarball */
let packed;

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sdk-pack-'));
  const out = execFileSync('npm', ['pack', '--json', '--pack-destination', tmp], {
    cwd: pkgDir,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const [info] = JSON.parse(out);
  tarball = path.join(tmp, info.filename);
  packed = info.files.map((f) => f.path);
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/**
 * Runs tsc on a project; errors inside node_modules are not ours (rrweb 2.2.2's own
 * declarations do not pass a full check with this TypeScript), every other one fails.
 * @param {string} project
 */
function tsc(project) {
  const r = spawnSync(bin('tsc'), ['-p', project, '--pretty', 'false'], { cwd: pkgDir, encoding: 'utf8' });
  assert.ifError(r.error); // no tsc: the dev dependencies are missing (npm ci)
  const lines = `${r.stdout}${r.stderr}`.split('\n').filter((l) => l.trim());
  // An error is one line plus indented detail lines; drop the node_modules ones with their detail.
  const ours = [];
  let keep = false;
  for (const l of lines) {
    if (!/^\s/.test(l)) keep = !l.startsWith('node_modules/');
    if (keep) ours.push(l);
  }
  assert.deepEqual(ours, [], `tsc -p ${project}:\n${ours.join('\n')}`);
}

test('the sources type-check (tsc --checkJs over src/ with their JSDoc)', () => {
  tsc('tsconfig.json');
});

test('the declarations match the code and the README examples type-check (test/types)', () => {
  tsc('test/types');
});

test('package.json is ready to publish', () => {
  assert.equal(pkg.name, '@assist-relay/sdk');
  assert.match(pkg.version, /^\d+\.\d+\.\d+$/);
  assert.equal(pkg.license, 'Apache-2.0');
  assert.ok(pkg.repository?.url && pkg.repository.directory === 'sdk/js', 'repository with directory');
  assert.equal(pkg.type, 'module');
  assert.equal(pkg.sideEffects, false);
  assert.ok(pkg.engines?.node, 'engines.node');
  assert.ok(!pkg.private, 'not private');
  assert.deepEqual(Object.keys(pkg.exports).sort(), ['.', './chat', './package.json', './record', './replay']);
  for (const dep of Object.keys(pkg.dependencies ?? {})) {
    assert.ok(fs.existsSync(path.join(pkgDir, 'node_modules', dep)), `${dep} installed`);
  }
});

test('npm pack holds every export target, its types, the licence and nothing of the tests', () => {
  for (const [name, target] of Object.entries(pkg.exports)) {
    const targets = typeof target === 'string' ? { default: target } : target;
    if (name !== './package.json') assert.ok(targets.types, `${name} has types`);
    assert.deepEqual(Object.keys(targets).at(-1), 'default', `${name}: "default" comes last`);
    for (const file of Object.values(targets)) {
      assert.ok(packed.includes(file.replace(/^\.\//, '')), `${name} -> ${file} is packed`);
    }
  }
  for (const f of ['package.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'index.d.ts']) assert.ok(packed.includes(f), f);
  assert.deepEqual(packed.filter((f) => /^(test|node_modules)\//.test(f) || f.startsWith('tsconfig')), []);
  // Every relative import of a packed module (JS and declarations) is packed too.
  for (const f of packed.filter((p) => /\.(js|d\.ts)$/.test(p))) {
    const text = fs.readFileSync(path.join(pkgDir, f), 'utf8');
    for (const [, spec] of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      // JSDoc `import('../types/x.js')` and declarations name the .d.ts by its .js name.
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(f), spec));
      const found = [target, target.replace(/\.js$/, '.d.ts')].filter((t) => packed.includes(t));
      if (f.endsWith('.d.ts')) assert.ok(found.at(-1)?.endsWith('.d.ts'), `${f} imports ${spec}: its .d.ts is packed`);
      else assert.ok(found.length > 0, `${f} imports ${spec}: ${target} is packed`);
    }
  }
});

test('are-the-types-wrong finds no problem in the tarball (ESM-only profile)', () => {
  const r = spawnSync(bin('attw'), [tarball, '--profile', 'esm-only', '--format', 'ascii'], {
    cwd: pkgDir,
    encoding: 'utf8',
  });
  assert.ifError(r.error);
  assert.equal(r.status, 0, `attw:\n${r.stdout}${r.stderr}`);
});

test('the packed entry points import from a clean node_modules; /chat needs no rrweb', async () => {
  const app = path.join(tmp, 'app');
  const modules = path.join(app, 'node_modules');
  fs.mkdirSync(path.join(modules, '@assist-relay'), { recursive: true });
  fs.mkdirSync(path.join(modules, '@msgpack'), { recursive: true });
  execFileSync('tar', ['xzf', tarball, '-C', path.join(modules, '@assist-relay')]);
  fs.renameSync(path.join(modules, '@assist-relay', 'package'), path.join(modules, '@assist-relay', 'sdk'));
  fs.symlinkSync(path.join(pkgDir, 'node_modules/@msgpack/msgpack'), path.join(modules, '@msgpack/msgpack'), 'dir');
  fs.writeFileSync(path.join(app, 'package.json'), '{"type":"module"}\n');

  const load = (spec) => {
    const script = `import * as m from ${JSON.stringify(spec)}; console.log(JSON.stringify(Object.keys(m).sort()));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: app, encoding: 'utf8' });
    return { ok: r.status === 0, names: r.status === 0 ? JSON.parse(r.stdout) : null, stderr: r.stderr };
  };

  const chat = load('@assist-relay/sdk/chat');
  assert.ok(chat.ok, `/chat without rrweb: ${chat.stderr}`);
  assert.ok(chat.names.includes('RelayClient') && chat.names.includes('ChatPanel') && chat.names.includes('CallManager'));
  assert.ok(!load('@assist-relay/sdk/record').ok, '/record needs rrweb (the optional peer dependency)');

  // The rrweb dependency tree is flat in our node_modules: link every package, as npm would install them.
  for (const dep of fs.readdirSync(path.join(pkgDir, 'node_modules'))) {
    if (dep.startsWith('.') || fs.existsSync(path.join(modules, dep))) continue;
    fs.symlinkSync(path.join(pkgDir, 'node_modules', dep), path.join(modules, dep), 'dir');
  }
  const source = await import(pathToFileURL(path.join(pkgDir, 'src/index.js')).href);
  const root = load('@assist-relay/sdk');
  assert.ok(root.ok, root.stderr);
  assert.deepEqual(root.names, Object.keys(source).sort());
  for (const entry of ['record', 'replay']) {
    const r = load(`@assist-relay/sdk/${entry}`);
    assert.ok(r.ok, `/${entry}: ${r.stderr}`);
    assert.ok(r.names.includes('RelayClient'));
  }
  assert.ok(load('@assist-relay/sdk/record').names.includes('startRecording'));
  assert.ok(!load('@assist-relay/sdk/record').names.includes('LiveView'));
  assert.ok(load('@assist-relay/sdk/replay').names.includes('LiveView'));
  assert.ok(!load('@assist-relay/sdk/replay').names.includes('startRecording'));
});
