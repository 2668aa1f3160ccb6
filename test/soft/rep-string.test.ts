// REP STOS and REP MOVS on the soft CPU, which does the elements that share a page at once
// (ops-int.ts repBlockStep): the memory and rDI/rSI/rCX after each must be what the element-by-
// element definition (SDM vol. 2, STOS and MOVS) gives, computed here on a copy of RAM: across
// pages, unaligned, with patterns that show a misplaced byte, with a forward overlap (MOVSB
// repeating its first bytes), a backward one, DF set, and a store that runs off the end of RAM
// (the memory exit must find rCX and rDI counting only the elements that were written).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { GPR, STATE } from '../../src/nvmm/state.js';
import { enterLongModeUser, runToExit, withRamMachine, type RamMachine } from '../helpers/machine.js';
import { assembleText, needsNasm } from '../helpers/nasm.js';
import { Rng } from './oracle.js';

const RAM = 4 << 20, GDT = 0x1000, TSS = 0x2000, PT = 0x10000;
const CODE = 0x100000, RESULTS = 0x180000, DATA = 0x200000, DATA_SIZE = 0x100000, STACK = 0x300000;
const END_PORT = 0x99;
const NAME = { 1: 'b', 2: 'w', 4: 'd', 8: 'q' } as const;

interface Case { op: 'stos' | 'movs'; size: 1 | 2 | 4 | 8; dst: number; src: number; count: number; value: bigint; down?: boolean }

const CASES: Case[] = [
  { op: 'stos', size: 8, dst: DATA + 3, src: 0, count: 20000, value: 0x0102030405060708n },
  { op: 'stos', size: 8, dst: DATA + 0x30000, src: 0, count: 512, value: 0n },
  { op: 'stos', size: 1, dst: DATA + 0x40ffd, src: 0, count: 9000, value: 0xabn },
  { op: 'stos', size: 2, dst: DATA + 0x45001, src: 0, count: 4097, value: 0xbeefn },
  { op: 'stos', size: 4, dst: DATA + 0x48ffe, src: 0, count: 3000, value: 0xcafef00dn },
  { op: 'stos', size: 8, dst: DATA + 0x4f000, src: 0, count: 1, value: 0x1111n },
  { op: 'stos', size: 8, dst: DATA + 0x4f100, src: 0, count: 0, value: 0x2222n },
  { op: 'movs', size: 1, dst: DATA + 0x60123, src: DATA + 0x50fff, count: 10000, value: 0n },
  { op: 'movs', size: 8, dst: DATA + 0x70005, src: DATA + 0x68ff9, count: 3000, value: 0n },
  { op: 'movs', size: 1, dst: DATA + 0x80001, src: DATA + 0x80000, count: 6000, value: 0n }, // forward overlap: repeats a byte
  { op: 'movs', size: 8, dst: DATA + 0x88003, src: DATA + 0x88000, count: 1000, value: 0n }, // forward overlap inside an element
  { op: 'movs', size: 4, dst: DATA + 0x90000, src: DATA + 0x90006, count: 5000, value: 0n }, // backward overlap
  { op: 'movs', size: 1, dst: DATA + 0xa0fff, src: DATA + 0x98800, count: 3000, value: 0n, down: true },
  { op: 'stos', size: 8, dst: DATA + 0xb2000, src: 0, count: 700, value: 0x5a5a5a5a5a5a5a5an, down: true },
];

const hex = (n: number | bigint) => `0x${n.toString(16)}`;

function source(): string {
  const lines = ['bits 64', `org ${hex(CODE)}`];
  CASES.forEach((k, n) => {
    lines.push(k.down ? 'std' : 'cld', `mov rdi, ${hex(k.dst)}`, `mov rsi, ${hex(k.src)}`, `mov rcx, ${k.count}`, `mov rax, ${hex(k.value)}`,
      `rep ${k.op}${NAME[k.size]}`, 'cld', `mov [${hex(RESULTS + 24 * n)}], rdi`, `mov [${hex(RESULTS + 24 * n + 8)}], rsi`, `mov [${hex(RESULTS + 24 * n + 16)}], rcx`);
  });
  // Off the end of RAM: 100 bytes fit, the 101st is a memory exit.
  lines.push(`mov rdi, ${hex(RAM - 100)}`, 'mov rcx, 300', 'mov al, 0x77', 'rep stosb', `out ${hex(END_PORT)}, al`, 'jmp $');
  return lines.join('\n') + '\n';
}

/** The SDM's loop, one element at a time, on `ram`; returns the final rDI, rSI, rCX. */
function reference(ram: Uint8Array, k: Case): [number, number, number] {
  let di = k.dst, si = k.src;
  const step = k.down ? -k.size : k.size;
  for (let n = 0; n < k.count; n++) {
    const element = k.op === 'stos' ? Array.from({ length: k.size }, (_, b) => Number((k.value >> BigInt(8 * b)) & 0xffn)) : [...ram.subarray(si, si + k.size)];
    ram.set(element, di); // the whole element is read before any of it is written
    di += step;
    if (k.op === 'movs') si += step;
  }
  return [di, si, 0];
}

function prepare(m: RamMachine, image: Uint8Array): void {
  m.ram.set(image, CODE);
  const rng = new Rng(0x5705);
  for (let a = DATA; a < DATA + DATA_SIZE; a++) m.ram[a] = rng.next() & 0xff;
  enterLongModeUser(m, {
    bits: 64,
    // null, code64 DPL 0, data DPL 0, data DPL 3 (0x18), code64 DPL 3 (0x20), 64-bit TSS (0x28).
    gdt: GDT, descriptors: [0n, 0x00af9b000000ffffn, 0x00cf93000000ffffn, 0x00cff3000000ffffn, 0x00affb000000ffffn, 0x00008b0020000067n, 0n],
    pageTables: PT, tss: TSS, rip: CODE, rsp: STACK,
  });
  m.view.setBigUint64(PT + 0x2000 + 8 * (RAM >> 21), BigInt(RAM) | 0x87n, true); // a 2 MiB page past RAM: present, user, writable
}

test('soft CPU: REP STOS and REP MOVS leave memory and rDI/rSI/rCX as the element-by-element loop does', needsNasm, () => {
  const image = assembleText(source());
  withRamMachine(SoftBackend.open(), RAM, (m) => {
    prepare(m, image);
    const want = m.ram.slice();
    const regs = CASES.map((k) => reference(want, k));
    want.fill(0x77, RAM - 100);
    const exit = runToExit(m.vcpu);
    assert.equal(exit.kind, 'memory', JSON.stringify(exit, (_k, v: unknown) => (typeof v === 'bigint' ? hex(v) : v)));
    if (exit.kind === 'memory') assert.equal(exit.gpa, RAM);
    const g = m.vcpu.getState(STATE.GPRS).gprs;
    assert.deepEqual([g[GPR.RDI], g[GPR.RCX]], [BigInt(RAM), 200n], 'rDI and rCX at the memory exit: 100 elements done');
    CASES.forEach((k, n) => {
      const got = [0, 8, 16].map((o) => Number(m.view.getBigUint64(RESULTS + 24 * n + o, true)));
      assert.deepEqual(got, regs[n], `rDI, rSI, rCX after case ${n} (rep ${k.op}${NAME[k.size]})`);
    });
    for (let a = DATA; a < RAM; a += 0x1000) {
      const w = want.subarray(a, a + 0x1000), h = m.ram.subarray(a, a + 0x1000);
      if (Buffer.compare(w, h) !== 0) {
        const at = w.findIndex((b, j) => b !== h[j]);
        assert.fail(`memory differs at ${hex(a + at)}: ${hex(h[at]!)}, not ${hex(w[at]!)}`);
      }
    }
  });
});
