// PUSHA/PUSHAD and POPA/POPAD that fault part-way (guests/soft/pusha-fault.asm): with the stack a
// page between two pages that are not present, a push or pop after the first few raises #PF, and
// the instruction must change nothing: ESP and every register as before it (the frame's ESP and
// the registers the handler sees), the error code a user write (PUSHA) or read (POPA) of a page
// not present, CR2 on that page. 32- and 16-bit operand sizes. Also run on KVM where KVM has
// VMX/SVM, so the expectations are the real CPU's.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { backends, reports, runGuest } from './guest-run.js';

const RESULT = 0x310000, STACK_PAGE = 0x200000;
const PF = 14, PF_WRITE = 2, PF_USER = 4;
const CASES = [
  { what: 'PUSHAD', esp: STACK_PAGE + 12, write: true },
  { what: 'O16 PUSHA', esp: STACK_PAGE + 6, write: true },
  { what: 'POPAD', esp: STACK_PAGE + 0x1000 - 12, write: false },
  { what: 'O16 POPA', esp: STACK_PAGE + 0x1000 - 6, write: false },
];

test('soft CPU: PUSHA/POPA that fault part-way leave ESP and the registers unchanged (#PF at the unmapped page)', (t) => {
  if (!hasNasm()) return t.skip('nasm not installed');
  const image = assemble('soft/pusha-fault.asm');
  for (const [name, open] of backends()) {
    const run = runGuest(open(), image);
    assert.equal(run.end, 'end', `${name}: reports ${reports(run)}`);
    assert.deepEqual(reports(run), [0xdd], name);
    const dv = new DataView(run.ram.buffer, run.ram.byteOffset);
    CASES.forEach((c, k) => {
      const a = RESULT + 64 * k;
      const at = (o: number) => dv.getUint32(a + o, true);
      const n = (k + 1) * 0x11111111;
      assert.deepEqual({ vector: at(0), error: at(4), esp: at(12) }, { vector: PF, error: PF_USER | (c.write ? PF_WRITE : 0), esp: c.esp }, `${name}: ${c.what}`);
      const page = c.write ? STACK_PAGE - 0x1000 : STACK_PAGE + 0x1000;
      assert.ok(at(8) >= page && at(8) < page + 0x1000, `${name}: ${c.what}: CR2 0x${at(8).toString(16)} is not on the page at 0x${page.toString(16)}`);
      // EAX ECX EDX EBX EBP ESI EDI as set before the instruction
      assert.deepEqual([16, 20, 24, 28, 32, 36, 40].map(at), [0, 1, 2, 3, 5, 6, 7].map((r) => (n + r) >>> 0), `${name}: ${c.what}: registers`);
    });
  }
});
