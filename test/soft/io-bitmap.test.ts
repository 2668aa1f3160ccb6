// The TSS I/O permission bitmap on the soft CPU (guests/soft/io-bitmap.asm): at CPL 3 with IOPL 0,
// allowed ports exit as I/O, denied ones (a bit set for any byte of the access, or the bitmap bytes
// beyond the TSS limit) raise #GP(0). Also run on KVM where KVM has VMX/SVM.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guestImage, needsNasm } from '../helpers/nasm.js';
import { runOnEachBackend } from './guest-run.js';

test('soft CPU: IN/OUT/OUTS at CPL > IOPL consult the TSS I/O permission bitmap', needsNasm, () => {
  const image = guestImage('soft/io-bitmap.asm');
  for (const [name, run] of runOnEachBackend(image)) {
    assert.equal(run.end, 'end', `${name}: ${JSON.stringify(run.io)}`);
    const r = (value: number) => ({ out: true, port: 0xe0, size: 1, value });
    const gp = [r(13), r(0)];
    assert.deepEqual(run.io, [
      r(1), r(2),
      { out: true, port: 0x70, size: 4, value: 0x12345678 },
      { out: false, port: 0x80, size: 1, value: 0 },
      ...gp, // OUT 0xE2
      ...gp, // OUT DX=0x72 dword: port 0x74 denied
      { out: true, port: 0x71, size: 2, value: 0xbeef },
      ...gp, // OUT DX=0x500: beyond the TSS limit
      ...gp, // OUTSB DX=0xE2
      { out: false, port: 0x3ff, size: 1, value: 0 },
      r(7),
    ], name);
  }
});
