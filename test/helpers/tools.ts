/**
 * The host side of the tests: the repository's paths, temporary directories, and the programs a
 * test runs (the external tools used as references, tsvmm's own command, node itself).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

/** The repository (this file runs from dist/test/helpers/). */
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** The tsvmm command, to run with process.execPath. */
export const TSVMM_BIN = join(REPO_ROOT, 'bin', 'tsvmm.js');

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** Runs `fn` with a fresh temporary directory that is removed afterwards. */
export function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-test-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** withTempDir for an async body: the directory lives until the body's promise settles. */
export async function withTempDirAsync<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-test-'));
  try {
    return await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A fresh temporary directory that is removed once the test `t` has ended. */
export function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8' });
}

/**
 * Runs the ES module text `script` in a fresh node process with `args` (its process.argv[1...])
 * and returns what it wrote to stdout, parsed as JSON. The process must exit 0; a timeout kills
 * it (a code under test that hangs fails the test instead of hanging the runner).
 */
export function evalInNode<T>(script: string, args: string[], opts: { timeoutMs?: number } = {}): T {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, ...args], { encoding: 'utf8', timeout: opts.timeoutMs });
  assert.equal(r.signal, null, `node -e ${args.join(' ')} did not return (killed by ${r.signal})`);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}
