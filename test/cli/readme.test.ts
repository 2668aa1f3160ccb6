// The README's API example runs as written (with KVM), so the README stays true.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { kvmOrSkip } from '../helpers/kvm.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

test("the README's API example prints what it says (kvm)", (t) => {
  if (!kvmOrSkip(t)) return;
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const code = /## Using the API[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(code, 'README has a ts block under "Using the API"');
  // Inside the package, so that `import ... from 'tsvmm'` resolves to this checkout.
  const file = join(ROOT, 'dist', 'readme-example.mjs');
  writeFileSync(file, code);
  try {
    const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.stderr, '');
    assert.equal(r.stdout, 'port 16: 65\n');
  } finally {
    rmSync(file, { force: true });
  }
});

test("the README's library example boots the hello guest and ends with a reset (kvm)", async (t) => {
  if (!kvmOrSkip(t)) return;
  if (!hasNasm()) return t.skip('nasm not installed');
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const code = /## The library[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(code, 'README has a js block under "The library"');
  const dir = join(ROOT, 'dist', 'readme-library');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'hello.elf'), assemble('board/hello.asm'));
  writeFileSync(join(dir, 'example.mjs'), code);
  try {
    const r = spawnSync(process.execPath, ['example.mjs'], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.stderr, '');
    assert.match(r.stdout, /^hello from a multiboot guest\nrtc \d\d-\d\d\necho> hi \nended: reset\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
