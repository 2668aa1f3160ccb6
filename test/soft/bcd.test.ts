// AAA, AAS, DAA, DAS, AAM, AAD on the soft CPU, run at CPL 3 in 32-bit compatibility mode:
// every AL value with random AH and flags, checked against a reference written from the Intel SDM
// vol. 2 pseudocode (below), and against the real CPU where KVM has VMX/SVM (kvm_pvm runs
// compatibility-mode code as 64-bit code, where these raise #UD). Defined flags only:
// AAA/AAS AF CF; DAA/DAS SF ZF AF PF CF; AAM/AAD SF ZF PF). AAM 0 raises #DE.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import type { Backend } from '../../src/nvmm/backend.js';
import { kvmOrSkip } from '../helpers/kvm.js';
import { enterLongModeUser, runToExit, withRamMachine } from '../helpers/machine.js';
import { assembleText, needsNasm } from '../helpers/nasm.js';
import { hardwareKvm } from './guest-run.js';
import { Rng } from './oracle.js';

const RAM = 4 << 20, GDT = 0x1000, TSS = 0x2000, IDT = 0x3000, DE_HANDLER = 0x4000, PT = 0x10000;
const CODE = 0x100000, DATA = 0x200000, STACK = 0x300000;
const END_PORT = 0x99, DE_PORT = 0xe3;
const CF = 1, PF = 4, AF = 0x10, ZF = 0x40, SF = 0x80;
const PAR = (v: number) => { let p = 1; for (let b = v & 0xff; b; b >>= 1) p ^= b & 1; return p ? PF : 0; };
const szp = (v: number) => (v & 0x80 ? SF : 0) | (v === 0 ? ZF : 0) | PAR(v);

interface Case { insn: string; ax: number; flags: number; imm: number }
const NAMES = ['aaa', 'aas', 'daa', 'das', 'aam', 'aad'] as const;
const DEFINED: Record<string, number> = { aaa: AF | CF, aas: AF | CF, daa: SF | ZF | AF | PF | CF, das: SF | ZF | AF | PF | CF, aam: SF | ZF | PF, aad: SF | ZF | PF };

/** The SDM pseudocode (vol. 2A/2B, AAA AAS DAA DAS AAM AAD), defined flags only. */
function reference(k: Case): { ax: number; flags: number } {
  let al = k.ax & 0xff, ah = k.ax >> 8, f = 0;
  const cf = k.flags & CF, af = k.flags & AF;
  switch (k.insn) {
    case 'aaa':
      if ((al & 0xf) > 9 || af) { const ax = (k.ax + 0x106) & 0xffff; ah = ax >> 8; al = ax & 0xf; f = AF | CF; } else al &= 0xf;
      break;
    case 'aas':
      if ((al & 0xf) > 9 || af) { const ax = (k.ax - 6) & 0xffff; ah = ((ax >> 8) - 1) & 0xff; al = ax & 0xf; f = AF | CF; } else al &= 0xf;
      break;
    case 'daa': case 'das': {
      const oldAl = al, sign = k.insn === 'daa' ? 1 : -1;
      if ((al & 0xf) > 9 || af) { const v = al + 6 * sign; al = v & 0xff; f = AF | cf | (v > 0xff || v < 0 ? CF : 0); }
      if (oldAl > 0x99 || cf) { al = (al + 0x60 * sign) & 0xff; f |= CF; }
      f |= szp(al);
      break;
    }
    case 'aam': ah = Math.floor(al / k.imm); al %= k.imm; f = szp(al); break;
    default: al = (al + ah * k.imm) & 0xff; ah = 0; f = szp(al);
  }
  return { ax: (ah << 8) | al, flags: f };
}

function cases(seed: number): Case[] {
  const r = new Rng(seed);
  const out: Case[] = [];
  for (const insn of NAMES) {
    for (let al = 0; al < 256; al++) {
      const imm = insn === 'aam' || insn === 'aad' ? (r.chance(0.5) ? 10 : 1 + r.int(255)) : 0;
      out.push({ insn, ax: (r.int(256) << 8) | al, flags: r.next() & (CF | PF | AF | ZF | SF | 0x800), imm });
    }
  }
  return out;
}

function source(list: Case[], extra: string[]): string {
  const lines = ['bits 32', `org 0x${CODE.toString(16)}`];
  list.forEach((k, n) => {
    const a = DATA + 16 * n;
    lines.push(`mov esi, 0x${a.toString(16)}`, 'push dword [esi + 4]', 'popfd', 'mov ax, [esi]',
      k.insn === 'aam' || k.insn === 'aad' ? `${k.insn} ${k.imm}` : k.insn, 'mov [esi + 8], ax', 'pushfd', 'pop dword [esi + 12]');
  });
  lines.push(...extra, `out 0x${END_PORT.toString(16)}, al`, 'jmp $');
  return lines.join('\n') + '\n';
}

/**
 * Runs `image` at CPL 3 in compatibility mode (32-bit code segment in long mode, IOPL 3); #DE goes
 * through the IDT to a CPL-0 handler that does OUT to DE_PORT. Returns the exit and the data area.
 */
function runCompat(backend: Backend, image: Uint8Array, init: Uint8Array): { exit: string; data: Uint8Array } {
  return withRamMachine(backend, RAM, (m) => {
    m.view.setBigUint64(TSS + 4, BigInt(STACK + 0x10000), true); // RSP0
    // IDT vector 0: 64-bit interrupt gate to 0x08:DE_HANDLER, which does OUT DE_PORT.
    m.view.setUint32(IDT, (0x08 << 16) | DE_HANDLER, true); m.view.setUint32(IDT + 4, 0x8e00, true);
    m.ram.set([0xe6, DE_PORT, 0xeb, 0xfe], DE_HANDLER);
    m.ram.set(image, CODE);
    m.ram.set(init, DATA);
    enterLongModeUser(m, {
      bits: 32,
      // null, code64 DPL 0 (0x08), data DPL 0 (0x10), data DPL 3 (0x18), code32 DPL 3 (0x20), 64-bit TSS (busy) at 0x2000 (0x28).
      gdt: GDT, descriptors: [0n, 0x00af9b000000ffffn, 0x00cf93000000ffffn, 0x00cff3000000ffffn, 0x00cffb000000ffffn, 0x00008b0020000067n, 0n],
      pageTables: PT, tss: TSS, idt: { base: IDT, limit: 0xfff }, rip: CODE, rsp: STACK,
    });
    const exit = runToExit(m.vcpu);
    const desc = exit.kind === 'io' ? `io 0x${exit.port.toString(16)}` : exit.kind === 'invalid' ? `invalid: ${exit.reason}` : exit.kind;
    return { exit: desc, data: m.ram.slice(DATA, DATA + 0x10000) };
  });
}

function build(list: Case[], extra: string[] = []): { image: Uint8Array; init: Uint8Array } {
  const init = new Uint8Array(16 * list.length);
  const dv = new DataView(init.buffer);
  list.forEach((k, n) => { dv.setUint16(16 * n, k.ax, true); dv.setUint32(16 * n + 4, k.flags | 0x202, true); });
  return { image: assembleText(source(list, extra)), init };
}

function results(list: Case[], data: Uint8Array): { ax: number; flags: number }[] {
  const dv = new DataView(data.buffer, data.byteOffset);
  return list.map((k, n) => ({ ax: dv.getUint16(16 * n + 8, true), flags: dv.getUint32(16 * n + 12, true) & DEFINED[k.insn]! }));
}

const show = (k: Case) => `${k.insn}${k.imm ? ` ${k.imm}` : ''} AX=0x${k.ax.toString(16)} flags=0x${k.flags.toString(16)}`;

test('soft CPU: AAA AAS DAA DAS AAM AAD in compatibility mode match the SDM pseudocode', needsNasm, () => {
  const list = cases(0xbcd);
  const { image, init } = build(list);
  const run = runCompat(SoftBackend.open(), image, init);
  assert.equal(run.exit, `io 0x${END_PORT.toString(16)}`);
  results(list, run.data).forEach((got, n) => {
    const k = list[n]!, want = reference(k);
    want.flags &= DEFINED[k.insn]!;
    assert.deepEqual(got, want, show(k));
  });
});

test('soft CPU: BCD adjust after ADD/SUB (the SDM examples) and #DE on AAM 0', needsNasm, () => {
  // DAA after 79H + 35H = AEH: 14H with CF (79 + 35 = 114); DAS after 35H - 47H = EEH: 88H with CF;
  // AAA after '9' + '8' (39H + 38H = 71H, AF set): AX = 0107H; AAS after 02H - 08H = FAH: AH - 1, AL = 04H.
  const { image } = build([], [
    'mov al, 0x79', 'add al, 0x35', 'daa', 'mov [0x200000], eax', 'pushfd', 'pop dword [0x200004]',
    'mov al, 0x35', 'sub al, 0x47', 'das', 'mov [0x200008], eax', 'pushfd', 'pop dword [0x20000c]',
    'mov ax, 0x0039', 'add al, 0x38', 'aaa', 'mov [0x200010], eax', 'pushfd', 'pop dword [0x200014]',
    'mov ax, 0x0502', 'sub al, 0x08', 'aas', 'mov [0x200018], eax', 'pushfd', 'pop dword [0x20001c]',
    'mov ax, 0x0063', 'aam', 'mov [0x200020], eax', 'mov ax, 0x0907', 'aad', 'mov [0x200024], eax',
    'aam 0',
  ]);
  const run = runCompat(SoftBackend.open(), image, new Uint8Array(0));
  assert.equal(run.exit, `io 0x${DE_PORT.toString(16)}`, 'AAM 0 raises #DE');
  const dv = new DataView(run.data.buffer, run.data.byteOffset);
  const r = (o: number) => dv.getUint32(o, true);
  assert.equal(r(0) & 0xff, 0x14); assert.equal(r(4) & CF, CF);
  assert.equal(r(8) & 0xff, 0x88); assert.equal(r(12) & CF, CF);
  assert.equal(r(16) & 0xffff, 0x0107); assert.equal(r(20) & (AF | CF), AF | CF);
  assert.equal(r(24) & 0xffff, 0x0404); assert.equal(r(28) & (AF | CF), AF | CF);
  assert.equal(r(32) & 0xffff, 0x0909, 'AAM: 99 = 9, 9');
  assert.equal(r(36) & 0xffff, 97, 'AAD: 9, 7 = 97');
});

test('soft CPU agrees with the real CPU on AAA AAS DAA DAS AAM AAD (compatibility mode, CPL 3)', needsNasm, (t) => {
  if (!hardwareKvm()) return t.skip('needs KVM with VMX/SVM (kvm_pvm does not run compatibility mode)');
  const kvm = kvmOrSkip(t);
  if (!kvm) return;
  const list = cases(0xbcd + 1);
  const { image, init } = build(list);
  const real = runCompat(kvm, image, init), soft = runCompat(SoftBackend.open(), image, init);
  assert.equal(real.exit, `io 0x${END_PORT.toString(16)}`, 'kvm');
  assert.equal(soft.exit, real.exit, 'soft');
  const a = results(list, real.data), b = results(list, soft.data);
  a.forEach((x, n) => assert.deepEqual(b[n], x, `${show(list[n]!)}: kvm AX=0x${x.ax.toString(16)} flags=0x${x.flags.toString(16)}`));
});
