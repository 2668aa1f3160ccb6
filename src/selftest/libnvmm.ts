/**
 * The libnvmm regression suites (NetBSD tests/lib/libnvmm, DragonFly test/testcases/libnvmm),
 * ported: h_io_assist, h_mem_assist (64- and 16-bit), h_misc and calc-vm. Each case runs its
 * guest until RDMSR and compares the result with the suite's expected value
 * (shared/specs/libnvmm-tests.md).
 */
import { hex } from '../common/bits.js';
import { TsvmmError, assertNever } from '../common/errors.js';
import { assemble, readCaseTable, type AssembledCase } from '../common/nasm.js';
import { PAGE_SIZE } from '../memory/page.js';
import { assistIo, assistMem } from '../nvmm/assist.js';
import { PROT, type Backend } from '../nvmm/backend.js';
import { Machine, type Vcpu } from '../nvmm/machine.js';
import { CR, GPR, SEG, STATE } from '../nvmm/state.js';
import { CODE_GPA, DATA_GPA, mapPage, mapStandardPages, resetX64 } from './guest-x64.js';

export interface CaseResult {
  name: string;
  pass: boolean;
  /** Why it failed: "wanted X, got Y" or the error. */
  detail?: string;
  /** Where this backend's behaviour differs from NVMM's, said even when the case passes. */
  note?: string;
}

type Report = (r: CaseResult) => void;

/** Runs the vCPU as the suites' runner loop does, until RDMSR or shutdown. */
function runUntilRdmsr(vcpu: Vcpu, io: Parameters<typeof assistIo>[1], mem: Parameters<typeof assistMem>[1]): 'rdmsr' | 'shutdown' {
  for (let exits = 0; exits < 100_000; exits++) {
    const exit = vcpu.run();
    switch (exit.kind) {
      case 'none':
        continue;
      case 'rdmsr':
        return 'rdmsr';
      case 'shutdown':
        return 'shutdown';
      case 'io':
        assistIo(vcpu, io);
        continue;
      case 'memory':
        assistMem(vcpu, mem);
        continue;
      case 'wrmsr': case 'cpuid': case 'halted': case 'interruptWindow': case 'nmiWindow':
      case 'tprChanged': case 'debug': case 'stopped': case 'invalid':
        throw new TsvmmError('TSVMM_ASSIST', `Invalid VMEXIT: ${exit.kind}${exit.kind === 'invalid' ? ` (${exit.reason})` : ''}`);
      default:
        assertNever(exit, 'exit');
    }
  }
  throw new TsvmmError('TSVMM_ASSIST', 'no RDMSR after 100000 exits');
}

function attempt(name: string, report: Report, body: () => CaseResult | Omit<CaseResult, 'name'>): void {
  try {
    report({ name, ...body() });
  } catch (e) {
    report({ name, pass: false, detail: e instanceof Error ? e.message : String(e) });
  }
}

function cString(buf: Uint8Array): string {
  const end = buf.indexOf(0);
  return Buffer.from(buf.subarray(0, end < 0 ? buf.length : end)).toString('latin1');
}

const IO_PORT = 123;
const IO_CASES: readonly { name: string; wanted: string; in: boolean }[] = [
  { name: 'test1 - INB', wanted: '12', in: true },
  { name: 'test2 - INW', wanted: '1234', in: true },
  { name: 'test3 - INL', wanted: '12345678', in: true },
  { name: 'test4 - INSB+REP', wanted: '12345', in: true },
  { name: 'test5 - INSW+REP', wanted: 'Comment est votre blanquette', in: true },
  { name: 'test6 - INSL+REP', wanted: '123456789abcdefghijklmnopqrs', in: true },
  { name: 'test7 - OUTB', wanted: '12', in: false },
  { name: 'test8 - OUTW', wanted: '1234', in: false },
  { name: 'test9 - OUTL', wanted: '12345678', in: false },
  { name: 'test10 - OUTSB+REP', wanted: '12345', in: false },
  { name: 'test11 - OUTSW+REP', wanted: 'Ah, Herr Bramard', in: false },
  { name: 'test12 - OUTSL+REP', wanted: '123456789abcdefghijklmnopqrs', in: false },
];

function ioAssistSuite(backend: Backend, cases: AssembledCase[], report: Report): void {
  const machine = new Machine(backend);
  try {
    const code = mapStandardPages(machine);
    const databuf = mapPage(machine, DATA_GPA, PROT.READ | PROT.WRITE);
    const vcpu = machine.createVcpu(0);
    const iobuf = new Uint8Array(128);
    let off = 0;
    const device = (io: { port: number; in: boolean; size: number; data: Uint8Array }) => {
      if (io.port !== IO_PORT) throw new TsvmmError('TSVMM_ASSIST', `Wrong port ${io.port}`);
      if (io.in) io.data.set(iobuf.subarray(off, off + io.size));
      else iobuf.set(io.data.subarray(0, io.size), off);
      off += io.size;
    };
    IO_CASES.forEach((c, i) => attempt(c.name, report, () => {
      const wanted = Buffer.from(c.wanted, 'latin1');
      iobuf.fill(0);
      databuf.fill(0);
      (c.in ? iobuf : databuf).set(wanted);
      off = 0;
      code.fill(0);
      code.set(cases[i]!.code);
      resetX64(vcpu);
      runUntilRdmsr(vcpu, device, () => { throw new TsvmmError('TSVMM_ASSIST', 'unexpected MMIO'); });
      const got = cString(c.in ? databuf : iobuf);
      return got === c.wanted ? { pass: true } : { pass: false, detail: `wanted "${c.wanted}", got "${got}"` };
    }));
  } finally {
    machine.destroy();
  }
}

const MEM64_CASES: readonly { name: string; wanted: bigint }[] = [
  { name: '64bit test1 - MOV', wanted: 0x3004n },
  { name: '64bit test2 - OR', wanted: 0x16ffn },
  { name: '64bit test3 - AND', wanted: 0x1fc0n },
  { name: '64bit test4 - XOR', wanted: 0x10cfn },
  { name: '64bit test5 - Address Sizes', wanted: 0x1f00n },
  { name: '64bit test6 - DMO', wanted: 0xffabn },
  { name: '64bit test7 - STOS', wanted: 0x00123456n },
  { name: '64bit test8 - LODS', wanted: 0x12345678n },
  { name: '64bit test9 - MOVS', wanted: 0x12345678n },
  { name: '64bit test10 - MOVZXB', wanted: 0x78n },
  { name: '64bit test11 - MOVZXW', wanted: 0x5678n },
  { name: '64bit test12 - CMP', wanted: 1n },
  { name: '64bit test13 - SUB', wanted: 0x0000000f0000a0ffn },
  { name: '64bit test14 - TEST', wanted: 1n },
  { name: '64bit test15 - XCHG', wanted: 0x123456n },
  { name: '64bit test16 - XCHG', wanted: 0x123456n },
  { name: '64bit test17 - REP', wanted: 0x4n },
  { name: '64bit test18 - Sign Extension', wanted: 1n },
  { name: '64bit test19 - BT', wanted: 1n },
];

const MEM16_CASES: readonly { name: string; gpa: number; wanted: bigint }[] = [
  { name: '16bit test1 - MOV single', gpa: 0x10f1, wanted: 0x023n },
  { name: '16bit test2 - MOV dual', gpa: 0x10f3, wanted: 0x123n },
  { name: '16bit test3 - MOV dual+disp', gpa: 0x10f1, wanted: 0x678n },
  { name: '16bit test4 - Mixed', gpa: 0x10f6, wanted: 0x1011n },
  { name: '16bit test5 - disp16-only', gpa: 0x1234, wanted: 0x12n },
  { name: '16bit test6 - XCHG', gpa: 0x1234, wanted: 0x1234n },
  { name: '16bit test7 - BT', gpa: 0x1234, wanted: 0x0001n },
];

/** The MMIO page of h_mem_assist: 4 KiB behind guest-physical 0x1000. */
function mmioDevice(mmiobuf: Uint8Array) {
  return (mem: { gpa: number; write: boolean; size: number; data: Uint8Array }) => {
    const off = mem.gpa - DATA_GPA;
    if (off < 0 || off + mem.size > PAGE_SIZE) throw new TsvmmError('TSVMM_ASSIST', `Out of page: ${hex(mem.gpa)}`);
    if (mem.write) mmiobuf.set(mem.data.subarray(0, mem.size), off);
    else mem.data.set(mmiobuf.subarray(off, off + mem.size));
  };
}

function u64At(buf: Uint8Array, off: number): bigint {
  return new DataView(buf.buffer, buf.byteOffset).getBigUint64(off, true);
}

function noIo(): never {
  throw new TsvmmError('TSVMM_ASSIST', 'unexpected port I/O');
}

function memAssist64Suite(backend: Backend, cases: AssembledCase[], report: Report): void {
  const machine = new Machine(backend);
  try {
    const code = mapStandardPages(machine);
    const vcpu = machine.createVcpu(0);
    const mmiobuf = new Uint8Array(PAGE_SIZE);
    MEM64_CASES.forEach((c, i) => attempt(c.name, report, () => {
      mmiobuf.fill(0);
      code.fill(0);
      code.set(cases[i]!.code);
      resetX64(vcpu);
      runUntilRdmsr(vcpu, noIo, mmioDevice(mmiobuf));
      const got = u64At(mmiobuf, 0);
      return got === c.wanted ? { pass: true } : { pass: false, detail: `wanted ${hex(c.wanted)}, got ${hex(got)}` };
    }));
  } finally {
    machine.destroy();
  }
}

function memAssist16Suite(backend: Backend, cases: AssembledCase[], report: Report): void {
  // A fresh machine: the vCPU starts from the reset state (real mode).
  const machine = new Machine(backend);
  try {
    const code = mapPage(machine, CODE_GPA, PROT.READ | PROT.EXEC);
    const vcpu = machine.createVcpu(0);
    const mmiobuf = new Uint8Array(PAGE_SIZE);
    MEM16_CASES.forEach((c, i) => attempt(c.name, report, () => {
      mmiobuf.fill(0);
      code.fill(0);
      code.set(cases[i]!.code);
      // reset_machine16(): only CS and RIP change; the GPRs carry over from the previous case.
      const s = vcpu.getState(STATE.ALL);
      s.segs[SEG.CS]!.base = 0n;
      s.segs[SEG.CS]!.limit = 0x2fff;
      s.gprs[GPR.RIP] = BigInt(CODE_GPA);
      vcpu.setState(STATE.ALL);
      runUntilRdmsr(vcpu, noIo, mmioDevice(mmiobuf));
      const got = u64At(mmiobuf, c.gpa - DATA_GPA);
      return got === c.wanted ? { pass: true } : { pass: false, detail: `wanted ${hex(c.wanted)}, got ${hex(got)}` };
    }));
  } finally {
    machine.destroy();
  }
}

function miscSuite(backend: Backend, tprCase: AssembledCase, report: Report): void {
  attempt('TPR', report, () => {
    const machine = new Machine(backend);
    try {
      if (!machine.capability.vcpuConf.tpr) return { pass: true, note: `skipped: the ${backend.name} backend cannot exit on TPR changes (counted as passed, as h_misc does)` };
      const code = mapStandardPages(machine);
      code.set(tprCase.code);
      const vcpu = machine.createVcpu(0);
      vcpu.configure({ kind: 'tpr', exitChanged: true });
      resetX64(vcpu);
      let exit = vcpu.run();
      while (exit.kind === 'none') exit = vcpu.run();
      if (exit.kind !== 'tprChanged') return { pass: false, detail: `wanted a tprChanged exit, got ${exit.kind}` };
      const s = vcpu.getState(STATE.ALL);
      const wantedRip = BigInt(CODE_GPA + tprCase.marker);
      if (s.crs[CR.CR8] !== 3n) return { pass: false, detail: `wanted CR8 3 at the exit, got ${s.crs[CR.CR8]}` };
      if (s.gprs[GPR.RIP] !== wantedRip) return { pass: false, detail: `wanted RIP ${hex(wantedRip)}, got ${hex(s.gprs[GPR.RIP]!)}` };
      vcpu.configure({ kind: 'tpr', exitChanged: false });
      resetX64(vcpu);
      exit = vcpu.run();
      while (exit.kind === 'none') exit = vcpu.run();
      if (exit.kind !== 'rdmsr') return { pass: false, detail: `with the policy off, wanted an rdmsr exit, got ${exit.kind}` };
      const cr8 = vcpu.getState(STATE.CRS).crs[CR.CR8];
      if (cr8 !== 3n) return { pass: false, detail: `with the policy off, wanted CR8 3, got ${cr8}` };
      return backend.name === 'kvm'
        ? { pass: true, note: 'KVM has no TPR exit: the backend single-steps while the policy is on and compares CR8 after each instruction' }
        : { pass: true };
    } finally {
      machine.destroy();
    }
  });
  attempt('RAM', report, () => {
    const machine = new Machine(backend);
    try {
      const top = machine.capability.maxRam - PAGE_SIZE;
      mapPage(machine, top, PROT.READ | PROT.EXEC);
      machine.unmapGpa(top, PAGE_SIZE);
      return { pass: true };
    } finally {
      machine.destroy();
    }
  });
}

/** calc-vm ("From Zero to NVMM"): add %eax,%ebx; hlt at 0xFFFF0000, from the reset state. */
function calcVm(backend: Backend, report: Report): void {
  attempt('calc-vm', report, () => {
    const machine = new Machine(backend);
    try {
      const page = mapPage(machine, 0xffff0000, PROT.READ | PROT.EXEC);
      page.set([0x01, 0xc3, 0xf4]);
      const vcpu = machine.createVcpu(0);
      const s = vcpu.getState(STATE.GPRS);
      s.gprs[GPR.RIP] = 0n;
      s.gprs[GPR.RAX] = 3n;
      s.gprs[GPR.RBX] = 5n;
      vcpu.setState(STATE.GPRS);
      let exit = vcpu.run();
      while (exit.kind === 'none') exit = vcpu.run();
      if (exit.kind !== 'halted') return { pass: false, detail: `wanted a halted exit, got ${exit.kind}` };
      const rbx = vcpu.getState(STATE.GPRS).gprs[GPR.RBX]!;
      return rbx === 8n ? { pass: true } : { pass: false, detail: `wanted Result: 8, got ${rbx}` };
    } finally {
      machine.destroy();
    }
  });
}

/** Runs every case on `backend`, reporting each as it finishes. */
export function runLibnvmmSuite(backend: Backend, report: Report): void {
  const table = (file: string, count: number) => {
    const cases = readCaseTable(assemble(`libnvmm/${file}`));
    if (cases.length !== count) throw new Error(`${file} has ${cases.length} cases, the suite ${count}`);
    return cases;
  };
  ioAssistSuite(backend, table('io-assist.asm', IO_CASES.length), report);
  memAssist64Suite(backend, table('mem-assist-64.asm', MEM64_CASES.length), report);
  memAssist16Suite(backend, table('mem-assist-16.asm', MEM16_CASES.length), report);
  miscSuite(backend, table('misc.asm', 1)[0]!, report);
  calcVm(backend, report);
}

export const LIBNVMM_CASE_COUNT = IO_CASES.length + MEM64_CASES.length + MEM16_CASES.length + 2 + 1;
