// SYSCALL/SYSRET in legacy 32-bit protected mode on the soft CPU (guests/soft/syscall-legacy.asm),
// as the AMD APM defines them (Intel CPUs raise #UD there, so no KVM comparison): flat CPL-0 CS/SS
// from STAR[47:32] with IF cleared and ECX = the return address, SYSRET to STAR[63:48] at CPL 3
// with IF set.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';
import { reports, runGuest } from './guest-run.js';

test('soft CPU: legacy-mode SYSCALL/SYSRET (EFER.SCE without long mode)', needsNasm, () => {
  const run = runGuest(SoftBackend.open(), guestImage('soft/syscall-legacy.asm'));
  assert.equal(run.end, 'end', `reports ${reports(run)}`);
  assert.deepEqual(reports(run), [1, 2, 3, 4]);
  const dv = new DataView(run.ram.buffer, run.ram.byteOffset + 0x310000);
  const d = (o: number) => dv.getUint32(o, true);
  const IF = 0x200;
  assert.deepEqual([d(0) & 0xffff, d(4) & 0xffff, d(8) & IF], [0x1b, 0x23, IF], 'after SYSRET: CPL 3, IF set');
  assert.deepEqual([d(16) & 0xffff, d(20) & 0xffff, d(24) & IF, d(28)], [0x08, 0x10, 0, d(32)], 'at the SYSCALL target');
});
