// `tsvmm disasm` as a person uses it: the whole output through a pipe, a file or a terminal; a
// huge file streamed in bounded memory; `| head` ends it at once. The streamed lines equal the
// disassembly of the whole buffer at once, however the file is cut into chunks.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { disassembleStream } from '../../src/cli/commands/disasm.js';
import { disassemble } from '../../src/x86/disasm.js';
import { hasTool, withTempDir, withTempDirAsync } from '../helpers/tools.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'tsvmm.js');
const GNU_TIME = '/usr/bin/time';

/** Deterministic bytes that decode to every kind of line: instructions, prefixes, (bad). */
function code(size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = 0x2545f491;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** What the command printed before it streamed: every line from one disassemble() of the whole buffer. */
function expected(bytes: Uint8Array, org: bigint): string {
  return disassemble(bytes, 64, org)
    .map((l) => {
      const hex = Array.from(bytes.subarray(l.offset, l.offset + l.length), (b) => b.toString(16).padStart(2, '0')).join(' ');
      return `${(org + BigInt(l.offset)).toString(16).padStart(4, ' ')}:\t${hex}\t${l.text}\n`;
    })
    .join('');
}

async function* cut(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

test('the streamed disassembly equals the whole-buffer one, for any chunk size', async () => {
  const bytes = code(8_000);
  const want = expected(bytes, 0x1000n);
  for (const size of [1, 7, 63, 64, 65, 4096, 1 << 20]) {
    let got = '';
    await disassembleStream(cut(bytes, size), 64, 0x1000n, { out: (s) => void (got += s), err: () => {} });
    assert.equal(got, want, `chunks of ${size} bytes`);
  }
});

test('disasm: the whole output through a pipe, as to a file', () => {
  withTempDir((dir) => {
    const file = join(dir, 'code.bin');
    const bytes = code(128 << 10); // about 1.3 MB of text: far more than a pipe holds
    writeFileSync(file, bytes);
    const piped = spawnSync(process.execPath, [BIN, 'disasm', file], { encoding: 'utf8', maxBuffer: 1 << 28 });
    assert.equal(piped.status, 0, piped.stderr);
    const outFile = join(dir, 'out.txt');
    const fd = openSync(outFile, 'w');
    try {
      const r = spawnSync(process.execPath, [BIN, 'disasm', file], { stdio: ['ignore', fd, 'pipe'] });
      assert.equal(r.status, 0);
    } finally {
      closeSync(fd);
    }
    const toFile = readFileSync(outFile, 'utf8');
    const want = expected(bytes, 0n);
    assert.equal(piped.stdout.split('\n').length, want.split('\n').length, 'line count through a pipe');
    assert.equal(piped.stdout, want);
    assert.equal(toFile, want);
  });
});

test('disasm: the whole output on a terminal', (t) => {
  if (!hasTool('script')) return t.skip('script (util-linux) not installed: no pty to test with');
  withTempDir((dir) => {
    const file = join(dir, 'code.bin');
    const bytes = code(32 << 10);
    writeFileSync(file, bytes);
    const r = spawnSync('script', ['-qec', `'${process.execPath}' '${BIN}' disasm '${file}'`, '/dev/null'], { encoding: 'utf8', maxBuffer: 1 << 28 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.replace(/\r\n/g, '\n'), expected(bytes, 0n));
  });
});

test('disasm of 64 MiB of zeros into `head -n 5` ends at once, in bounded memory', async (t) => {
  if (!existsSync(GNU_TIME)) return t.skip(`${GNU_TIME} (Debian package time) not installed: cannot measure the peak RSS`);
  await withTempDirAsync(async (dir) => {
    const zeros = join(dir, 'zeros.bin');
    writeFileSync(zeros, '');
    truncateSync(zeros, 64 << 20);
    const rssFile = join(dir, 'rss');
    // head's part: read five lines, then close the pipe. A process group, to end everything if it hangs.
    const child = spawn(GNU_TIME, ['-f', '%M', '-o', rssFile, process.execPath, BIN, 'disasm', zeros], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      if (stdout.split('\n').length > 5) child.stdout.destroy();
    });
    const guard = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 120_000);
    const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    clearTimeout(guard);
    assert.deepEqual(stdout.split('\n').slice(0, 5), ['   0:\t00 00\tadd    %al,(%rax)', '   2:\t00 00\tadd    %al,(%rax)', '   4:\t00 00\tadd    %al,(%rax)', '   6:\t00 00\tadd    %al,(%rax)', '   8:\t00 00\tadd    %al,(%rax)']);
    assert.equal(status, 141, `ended by the closed pipe, as by SIGPIPE (stderr: ${stderr})`);
    assert.doesNotMatch(stderr, /internal error|Error/);
    const rssKiB = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop());
    assert.ok(rssKiB > 0 && rssKiB < 300 * 1024, `peak RSS ${rssKiB} KiB, want < 300 MiB`);
  });
});

test('disasm: a file it cannot read is a usage error', () => {
  for (const path of ['/nonexistent/file', '/tmp']) {
    const r = spawnSync(process.execPath, [BIN, 'disasm', path], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, new RegExp(`^tsvmm disasm: TSVMM_USAGE: cannot read '${path}': `));
  }
});
