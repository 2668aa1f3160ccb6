// Path B of assistIo / assistMem (raw exits, emulated as libnvmm does) through the real Machine /
// Vcpu API, on the fake backend of test/helpers/fake-backend.ts: its toy CPU runs the guest code
// and returns raw io / memory exits. No KVM needed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TsvmmError } from '../../src/common/errors.js';
import { assistIo, assistMem, type IoAccess, type MemAccess } from '../../src/nvmm/assist.js';
import { PROT } from '../../src/nvmm/backend.js';
import type { VcpuExit } from '../../src/nvmm/exit.js';
import { Machine, type Vcpu } from '../../src/nvmm/machine.js';
import { GPR, SEG, STATE } from '../../src/nvmm/state.js';
import { runLibnvmmSuite, type CaseResult } from '../../src/selftest/libnvmm.js';
import { CODE_GPA, DATA_GPA, mapPage, mapStandardPages, resetX64 } from '../../src/selftest/guest-x64.js';
import { FLAG_DF } from '../../src/x86/flags.js';
import { FakeBackend, type FakeBackendOptions, type FakeVcpu } from '../helpers/fake-backend.js';
import { showExit } from '../helpers/machine.js';
import { assembleSnippet, needsNasm } from '../helpers/nasm.js';

const PORT = 123;

function suite(opts: FakeBackendOptions): CaseResult[] {
  const results: CaseResult[] = [];
  runLibnvmmSuite(new FakeBackend(opts), (r) => results.push(r));
  return results;
}

test('the ported libnvmm suite (h_io_assist 12, h_mem_assist 19 + 7, misc, calc-vm) passes through path B', needsNasm, () => {
  for (const opts of [{}, { instBytes: false, outsSegUnknown: false }] satisfies FakeBackendOptions[]) {
    const results = suite(opts);
    assert.equal(results.length, 41);
    const failed = results.filter((r) => !r.pass).map((r) => `${r.name}: ${r.detail}`);
    assert.deepEqual(failed, [], JSON.stringify(opts));
  }
});

// ---- a 64-bit guest with the standard pages, a RAM data page at 0x1000 and RAM at 0x7000 ----

interface Guest {
  machine: Machine;
  vcpu: Vcpu;
  fake: FakeVcpu;
  code: Uint8Array;
  /** RAM at 0x1000 (unless `mmioAt1000`), RAM at 0x7000. */
  data: Uint8Array | undefined;
  ram7: Uint8Array;
}

function guest64(source: string, opts: FakeBackendOptions & { mmioAt1000?: boolean } = {}): Guest {
  const backend = new FakeBackend(opts);
  const machine = new Machine(backend);
  const code = mapStandardPages(machine);
  const data = opts.mmioAt1000 ? undefined : mapPage(machine, DATA_GPA, PROT.READ | PROT.WRITE);
  const ram7 = mapPage(machine, 0x7000, PROT.READ | PROT.WRITE);
  // L1 entry for 0x7000 (the L1 table is the page at 0x6000)
  new DataView(machine.gpaToHva(0x6000).bytes.buffer, machine.gpaToHva(0x6000).bytes.byteOffset).setBigUint64(7 * 8, 0x7003n, true);
  const vcpu = machine.createVcpu(0);
  code.set(assembleSnippet(`${source}\n rdmsr`, 64));
  resetX64(vcpu);
  return { machine, vcpu, fake: backend.machines[0]!.vcpus[0]!, code, data, ram7 };
}

/** The runner loop of the suites; returns the io / memory exits seen, with RCX/RSI/RDI/RIP after each assist. */
function runToRdmsr(g: Guest, io: (a: IoAccess) => void, mem: (a: MemAccess) => void, ioMem?: (a: MemAccess) => void) {
  const steps: { exit: VcpuExit; rcx: bigint; rsi: bigint; rdi: bigint; rip: bigint }[] = [];
  for (let i = 0; i < 1000; i++) {
    const exit = g.vcpu.run();
    if (exit.kind === 'rdmsr') return steps;
    if (exit.kind === 'io') assistIo(g.vcpu, io, ioMem);
    else if (exit.kind === 'memory') assistMem(g.vcpu, mem);
    else throw new Error(`unexpected exit ${showExit(exit)}`);
    const s = g.vcpu.getState(STATE.GPRS);
    steps.push({ exit, rcx: s.gprs[GPR.RCX]!, rsi: s.gprs[GPR.RSI]!, rdi: s.gprs[GPR.RDI]!, rip: s.gprs[GPR.RIP]! });
  }
  throw new Error('no RDMSR');
}

function port(source: Uint8Array, sink: number[]) {
  let off = 0;
  const calls: number[] = [];
  const cb = (a: IoAccess) => {
    assert.equal(a.port, PORT);
    assert.equal(a.data.length, a.size);
    calls.push(a.size);
    if (a.in) { a.data.set(source.subarray(off, off + a.size)); off += a.size; }
    else sink.push(...a.data);
  };
  return { cb, calls };
}

const noMem = (a: MemAccess) => { throw new Error(`unexpected MMIO at ${a.gpa.toString(16)}`); };
const text = (s: string) => Uint8Array.from(Buffer.from(s, 'latin1'));

test('IN merges into AL/AX and zero-extends RAX for 32 bits; OUT sends the low bytes of RAX', needsNasm, () => {
  const g = guest64('in al, 123\n mov rbx, rax\n in ax, dx\n mov rsi, rax\n in eax, dx\n mov rdi, rax\n out dx, eax\n out 123, al');
  const s = g.vcpu.getState(STATE.GPRS);
  s.gprs[GPR.RAX] = 0xffffffffffffffffn;
  s.gprs[GPR.RDX] = BigInt(PORT);
  g.vcpu.setState(STATE.GPRS);
  const out: number[] = [];
  const p = port(Uint8Array.from([0x31, 0x41, 0x42, 0x51, 0x52, 0x53, 0x54]), out);
  const steps = runToRdmsr(g, p.cb, noMem);
  assert.equal(steps.length, 5);
  const r = g.vcpu.getState(STATE.GPRS).gprs;
  assert.equal(r[GPR.RBX], 0xffffffffffffff31n);
  assert.equal(r[GPR.RSI], 0xffffffffffff4241n);
  assert.equal(r[GPR.RDI], 0x54535251n);
  assert.deepEqual(out, [0x51, 0x52, 0x53, 0x54, 0x51]);
  // each exit moved RIP to npc: 2-byte in al,imm8 at 0x2000, then the next instruction ran
  assert.equal(steps[0]!.rip, BigInt(CODE_GPA + 2));
  assert.equal((steps[0]!.exit as { str: boolean }).str, false);
});

test('REP INS with DF = 0 is batched 32 bytes per exit; RIP moves to npc only when RCX reaches 0', needsNasm, () => {
  const wanted = text('0123456789abcdefghijklmnopqrstuvwxyzABCD'); // 40 bytes
  const g = guest64('mov rdi, 0x1000\n mov rcx, 40\n mov rdx, 123\n rep insb');
  const p = port(wanted, []);
  const steps = runToRdmsr(g, p.cb, noMem);
  assert.equal(steps.length, 2);
  assert.deepEqual([steps[0]!.rcx, steps[0]!.rdi, steps[0]!.rip], [8n, 0x1020n, 0x200fn]); // rep insb at 0x200f
  assert.deepEqual([steps[1]!.rcx, steps[1]!.rdi, steps[1]!.rip], [0n, 0x1028n, 0x2011n]);
  assert.equal(p.calls.length, 40); // one callback per element
  assert.deepEqual(g.data!.subarray(0, 41), Uint8Array.from([...wanted, 0]));

  // words: 20 x 2 bytes = 16 + 4 elements
  const g2 = guest64('mov rdi, 0x1000\n mov rcx, 20\n mov rdx, 123\n rep insw');
  const p2 = port(wanted, []);
  const s2 = runToRdmsr(g2, p2.cb, noMem);
  assert.deepEqual(s2.map((s) => s.rcx), [4n, 0n]);
  assert.deepEqual(p2.calls, Array(20).fill(2));
  assert.deepEqual(g2.data!.subarray(0, 40), wanted);
});

test('REP OUTS and INS with DF = 1 go one element per exit, downwards', needsNasm, () => {
  const g = guest64('mov rsi, 0x1003\n mov rcx, 4\n mov rdx, 123\n rep outsb\n mov rdi, 0x1013\n mov rcx, 2\n rep insw');
  const s = g.vcpu.getState(STATE.GPRS);
  s.gprs[GPR.RFLAGS] = 0x2n | BigInt(FLAG_DF);
  g.vcpu.setState(STATE.GPRS);
  g.data!.set(text('abcd'));
  const out: number[] = [];
  const p = port(text('WXYZ'), out);
  const steps = runToRdmsr(g, p.cb, noMem);
  assert.equal(steps.length, 6);
  assert.deepEqual(Buffer.from(out).toString('latin1'), 'dcba');
  assert.deepEqual(steps.slice(0, 4).map((x) => x.rsi), [0x1002n, 0x1001n, 0x1000n, 0xfffn]);
  assert.deepEqual(steps.slice(0, 4).map((x) => x.rcx), [3n, 2n, 1n, 0n]);
  // rep insw, DF = 1: 'WX' at 0x1013, 'YZ' at 0x1011
  assert.equal(Buffer.from(g.data!.subarray(0x11, 0x15)).toString('latin1'), 'YZWX');
  assert.equal(steps[5]!.rdi, 0x100fn);
});

test('OUTS honours a segment override, whether the exit names the segment or the assist rescans the prefixes', needsNasm, () => {
  for (const outsSegUnknown of [true, false]) {
    const g = guest64('mov rsi, 0x800\n mov rcx, 5\n mov rdx, 123\n fs rep outsb\n mov rsi, 0xff5\n gs outsb\n mov rsi, 0x1006\n ds outsb', { outsSegUnknown });
    const s = g.vcpu.getState(STATE.SEGS);
    s.segs[SEG.FS]!.base = 0x800n;
    s.segs[SEG.GS]!.base = 0x10n;
    s.segs[SEG.DS]!.base = 0x12345000n; // ignored in 64-bit mode
    g.vcpu.setState(STATE.SEGS);
    g.data!.set(text('12345!?'));
    const out: number[] = [];
    const steps = runToRdmsr(g, port(new Uint8Array(0), out).cb, noMem);
    assert.equal(Buffer.from(out).toString('latin1'), '12345!?', `outsSegUnknown ${outsSegUnknown}`);
    assert.deepEqual(steps.map((x) => (x.exit as { seg: number }).seg), outsSegUnknown ? [-1, -1, -1] : [SEG.FS, SEG.GS, SEG.DS]);
    assert.equal(steps[0]!.rsi, 0x805n);
  }
});

test('16-bit address size: only SI/DI/CX are used and changed (real mode)', needsNasm, () => {
  const backend = new FakeBackend();
  const machine = new Machine(backend);
  const code = mapPage(machine, CODE_GPA, PROT.READ | PROT.EXEC);
  const data = mapPage(machine, DATA_GPA, PROT.READ | PROT.WRITE);
  data.set(text('hello'));
  code.set(assembleSnippet('mov si, 0x1000\n mov cx, 5\n mov dx, 123\n rep outsb\n mov di, 0x1010\n mov cx, 3\n rep insb\n rdmsr', 16));
  const vcpu = machine.createVcpu(0);
  const s = vcpu.getState(STATE.ALL);
  s.segs[SEG.CS]!.base = 0n;
  s.gprs[GPR.RIP] = BigInt(CODE_GPA);
  s.gprs[GPR.RSI] = 0xdead00000000n;
  s.gprs[GPR.RDI] = 0xbeef00000000n;
  s.gprs[GPR.RCX] = 0xf00d00000000n;
  vcpu.setState(STATE.ALL);
  const out: number[] = [];
  const g = { machine, vcpu, fake: backend.machines[0]!.vcpus[0]!, code, data, ram7: data };
  const steps = runToRdmsr(g, port(text('abc'), out).cb, noMem);
  assert.equal(steps.length, 2);
  assert.equal((steps[0]!.exit as { addressSize: number }).addressSize, 2);
  assert.equal(Buffer.from(out).toString('latin1'), 'hello');
  assert.equal(Buffer.from(data.subarray(0x10, 0x13)).toString('latin1'), 'abc');
  const r = vcpu.getState(STATE.GPRS).gprs;
  assert.equal(r[GPR.RSI], 0xdead00001005n);
  assert.equal(r[GPR.RDI], 0xbeef00001013n);
  assert.equal(r[GPR.RCX], 0xf00d00000000n);
});

test('INS/OUTS on memory with no RAM use the mem callback, or fail with TSVMM_ASSIST without one', needsNasm, () => {
  const g = guest64('mov rdi, 0x1000\n mov rcx, 3\n mov rdx, 123\n rep insb\n mov rsi, 0x1000\n mov rcx, 2\n rep outsw', { mmioAt1000: true });
  const mmio = new Uint8Array(16);
  const writes: string[] = [];
  const out: number[] = [];
  runToRdmsr(g, port(text('xyz'), out).cb, noMem, (a) => {
    writes.push(`${a.write ? 'w' : 'r'}${a.gpa.toString(16)}/${a.size}`);
    if (a.write) mmio.set(a.data, a.gpa - 0x1000);
    else a.data.set(mmio.subarray(a.gpa - 0x1000, a.gpa - 0x1000 + a.size));
  });
  assert.deepEqual(writes, ['w1000/3', 'r1000/4']); // guest memory moves as one block per exit
  assert.deepEqual(Buffer.from(out).toString('latin1'), 'xyz\0');

  const g2 = guest64('mov rdi, 0x1000\n mov rcx, 3\n mov rdx, 123\n rep insb', { mmioAt1000: true });
  assert.equal(g2.vcpu.run().kind, 'io');
  assert.throws(() => assistIo(g2.vcpu, port(text('xyz'), []).cb),
    (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_ASSIST' && /0x1000/.test(e.message));
  assert.equal(g2.vcpu.getState(STATE.GPRS).gprs[GPR.RCX], 3n);
});

// ---- assistMem ----

function mmioDevice(buf: Uint8Array, log: string[] = []) {
  return (a: MemAccess) => {
    const off = a.gpa - 0x1000;
    assert.ok(off >= 0 && off + a.size <= buf.length, `Out of page: ${a.gpa.toString(16)}`);
    assert.equal(a.data.length, a.size);
    log.push(`${a.write ? 'w' : 'r'}${a.gpa.toString(16)}/${a.size}`);
    if (a.write) buf.set(a.data, off);
    else a.data.set(buf.subarray(off, off + a.size));
  };
}

test('assistMem: the KVM MMIO set (ADD ADC SBB NEG NOT INC DEC CMPXCHG MOVSX BTS/BTR/BTC) on MMIO', needsNasm, () => {
  const g = guest64(`
    mov rax, 0x1000
    mov qword [rax], 0x7f
    add byte [rax], 1
    mov rbx, 1
    cmp rbx, 2
    adc dword [rax + 8], 10
    sbb word [rax + 8], 1
    neg qword [rax + 16]
    not dword [rax + 24]
    inc word [rax + 28]
    dec byte [rax + 30]
    mov qword [rax + 32], 5
    mov ecx, 5
    mov edx, 9
    xchg eax, ecx
    cmpxchg [rcx + 32], edx
    mov eax, ecx
    movsx rdi, byte [rax]
    movsxd rsi, dword [rax + 24]
    bts qword [rax + 40], 63
    mov r9, 70
    btc dword [rax + 40], r9d
    btr word [rax + 40], 6`, { mmioAt1000: true });
  const buf = new Uint8Array(64);
  new DataView(buf.buffer).setBigUint64(16, 3n, true);
  buf[40] = 0x40;
  runToRdmsr(g, port(new Uint8Array(0), []).cb, mmioDevice(buf));
  const dv = new DataView(buf.buffer);
  assert.equal(dv.getBigUint64(0, true), 0x80n);
  assert.equal(dv.getBigUint64(8, true), 10n); // 0 + 10 + CF(1) = 11, then - 1 - CF(0)
  assert.equal(dv.getBigUint64(16, true), 0xfffffffffffffffdn);
  assert.equal(dv.getBigUint64(24, true), 0x00ff0001ffffffffn);
  assert.equal(dv.getBigUint64(32, true), 9n);
  assert.equal(dv.getBigUint64(40, true), 0x8000000000000000n); // bts 63, then btr 6
  assert.equal(dv.getBigUint64(48, true), 0x40n); // btc with bit offset 70: the dword at +8, bit 6
  const r = g.vcpu.getState(STATE.GPRS).gprs;
  assert.equal(r[GPR.RDI], 0xffffffffffffff80n);
  assert.equal(r[GPR.RSI], 0xffffffffffffffffn);
  assert.equal(r[GPR.RAX], 0x1000n);
});

test('assistMem: MOVS between RAM and MMIO touches the device only for the MMIO side', needsNasm, () => {
  const g = guest64('mov rsi, 0x7000\n mov rdi, 0x1000\n mov rcx, 2\n rep movsq\n mov rsi, 0x1000\n mov rdi, 0x7100\n mov rcx, 3\n rep movsd', { mmioAt1000: true });
  new DataView(g.ram7.buffer, g.ram7.byteOffset).setBigUint64(0, 0x1122334455667788n, true);
  new DataView(g.ram7.buffer, g.ram7.byteOffset).setBigUint64(8, 0x99aabbccddeeff00n, true);
  const buf = new Uint8Array(64);
  const log: string[] = [];
  const steps = runToRdmsr(g, port(new Uint8Array(0), []).cb, mmioDevice(buf, log));
  assert.deepEqual(log, ['w1000/8', 'w1008/8', 'r1000/4', 'r1004/4', 'r1008/4']);
  assert.equal(steps.length, 5); // one exit per REP iteration
  assert.deepEqual(steps.map((x) => x.rcx), [1n, 0n, 2n, 1n, 0n]);
  assert.deepEqual(Array.from(g.ram7.subarray(0x100, 0x10c)), Array.from(buf.subarray(0, 12)));
  assert.equal(new DataView(buf.buffer).getBigUint64(8, true), 0x99aabbccddeeff00n);
});

test('assistMem: RIP-relative and FS-based operands, 67-prefixed addresses, instruction fetched from guest memory', needsNasm, () => {
  const g = guest64(`org 0x2000
    mov dword [rel 0x1004], 0x11223344
    mov byte [fs:0x10], 7
    mov rax, 0xffffffff00001008
    mov word [eax], 0xbeef
    mov rbx, [rel 0x1000]`, { mmioAt1000: true, instBytes: false });
  const s = g.vcpu.getState(STATE.SEGS);
  s.segs[SEG.FS]!.base = 0xff0n;
  g.vcpu.setState(STATE.SEGS);
  const buf = new Uint8Array(16);
  const log: string[] = [];
  const steps = runToRdmsr(g, port(new Uint8Array(0), []).cb, mmioDevice(buf, log));
  assert.equal(steps.length, 4);
  assert.ok(steps.every((x) => x.exit.kind === 'memory' && x.exit.instBytes === undefined));
  assert.deepEqual(log, ['w1004/4', 'w1000/1', 'w1008/2', 'r1000/8']);
  assert.equal(g.vcpu.getState(STATE.GPRS).gprs[GPR.RBX], 0x1122334400000007n);
  assert.equal(new DataView(buf.buffer).getUint16(8, true), 0xbeef);
});

test('assistMem: an instruction it cannot emulate is a TSVMM_ASSIST error naming the bytes and RIP; the state is kept', () => {
  const script: VcpuExit[] = [
    { kind: 'memory', gpa: 0x1000, prot: 'read', instBytes: Uint8Array.from([0x0f, 0xc1, 0x03]) }, // xadd [rbx], eax
    { kind: 'memory', gpa: 0x1000, prot: 'read', instBytes: Uint8Array.from([0xd6, 0x00]) }, // invalid in 64-bit mode
  ];
  const backend = new FakeBackend({ run: () => script.shift()! });
  const machine = new Machine(backend);
  mapStandardPages(machine);
  const vcpu = machine.createVcpu(0);
  resetX64(vcpu);
  const cb = mmioDevice(new Uint8Array(16));
  vcpu.run();
  assert.throws(() => assistMem(vcpu, cb), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_ASSIST' &&
    /0f c1 03/.test(e.message) && /0x2000/.test(e.message) && /xadd/.test(e.message));
  vcpu.run();
  assert.throws(() => assistMem(vcpu, cb), (e: unknown) => e instanceof TsvmmError && e.code === 'TSVMM_ASSIST' &&
    /d6/.test(e.message) && /0x2000/.test(e.message));
  assert.equal(vcpu.getState(STATE.GPRS).gprs[GPR.RIP], BigInt(CODE_GPA));
});

test('path A is unchanged: exits that carry data go straight to the callbacks', () => {
  const script: VcpuExit[] = [
    { kind: 'io', in: false, port: 0x3f8, seg: -1, addressSize: 8, operandSize: 1, rep: true, str: true, data: text('ab') },
    { kind: 'memory', gpa: 0xfee00000, prot: 'write', data: Uint8Array.from([1, 2, 3, 4]) },
  ];
  const machine = new Machine(new FakeBackend({ run: () => script.shift()! }));
  const vcpu = machine.createVcpu(0);
  const ios: string[] = [];
  vcpu.run();
  assistIo(vcpu, (a) => ios.push(`${a.port}:${a.size}:${a.data[0]}`));
  assert.deepEqual(ios, ['1016:1:97', '1016:1:98']);
  vcpu.run();
  const mems: MemAccess[] = [];
  assistMem(vcpu, (a) => mems.push(a));
  assert.equal(mems.length, 1);
  assert.deepEqual([mems[0]!.gpa, mems[0]!.write, mems[0]!.size], [0xfee00000, true, 4]);
});
