// The calc guest on kvm: expressions typed on the UART, results read back; the committed
// prebuilt image is what nasm makes of the source.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { CALC_IMAGE, runCalcDemo } from '../../src/vmm/calc-demo.js';
import { kvmOrSkip } from '../helpers/kvm.js';

async function session(t: Parameters<typeof kvmOrSkip>[0], lines: string[]) {
  const backend = kvmOrSkip(t);
  if (!backend) return undefined;
  let text = '';
  const end = await runCalcDemo({
    backend,
    input: Readable.from(lines.map((l) => Buffer.from(l))),
    output: (bytes) => (text += Buffer.from(bytes).toString('latin1')),
  });
  return { end, text };
}

test('calc evaluates expressions with precedence, parentheses, unary minus and errors (kvm)', async (t) => {
  const r = await session(t, ['1+2\r', '(2+3)*7 - 100/3\r', '-5 % 3\r', '2147483647+1\r', '7/0\r', '3 +\r', 'quit\r']);
  if (!r) return;
  assert.deepEqual(r.end, { reason: 'reset' });
  const results = r.text.split('\r\n').filter((l) => !l.startsWith('calc>') && !l.startsWith('tsvmm calc'));
  assert.deepEqual(results, ['3', '2', '-2', 'error: overflow', 'error: division by zero', 'error: syntax', 'bye', '']);
  assert.match(r.text, /^tsvmm calc: /);
  assert.match(r.text, /calc> \(2\+3\)\*7 - 100\/3\r\n2\r\n/); // the guest echoes what it reads
});

test('calc: input that ends while the guest waits ends the run (kvm)', async (t) => {
  const r = await session(t, ['6*7\r']);
  if (!r) return;
  assert.deepEqual(r.end, { reason: 'input-ended' });
  assert.match(r.text, /\r\n42\r\ncalc> $/);
});

test('the committed calc.bin is the assembled calc.asm', (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  assert.deepEqual(assemble('calc/calc.asm'), new Uint8Array(readFileSync(CALC_IMAGE)));
});
