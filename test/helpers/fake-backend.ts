/**
 * A fake backend for tests of the API layer without KVM: it implements Backend / BackendMachine /
 * BackendVcpu, keeps each vCPU's state in an X64State (starting from NVMM's x86 reset state) and
 * returns RAW exits, as NVMM's kernel part and the soft backend do (io exits without `data`, with
 * npc; memory exits without `data`, with the gpa and the instruction bytes).
 *
 * What run() does is pluggable:
 *  - `interpret` (the default) executes the guest code at CS:RIP with x86/decoder + x86/emulate:
 *    it stops with `rdmsr` (MSR = ECX), `halted` (HLT), a raw `io` exit for IN/OUT/INS/OUTS (RIP
 *    left at the instruction; the assist moves it), a raw `memory` exit for the first data access
 *    with no RAM behind it (registers untouched, the emulator guarantees it), `invalid` for what the
 *    emulator lacks. It is a toy CPU: no interrupts, no exceptions.
 *  - any `(vcpu) => VcpuExit` script, for hand-made exits.
 */
import type {
  Backend, BackendIrqchip, BackendMachine, BackendVcpu, Capability, CpuidPolicy, GpaMapping, StopHandle,
} from '../../src/nvmm/backend.js';
import type { VcpuEvent } from '../../src/nvmm/event.js';
import type { IoExit, VcpuExit } from '../../src/nvmm/exit.js';
import { cpuMode } from '../../src/nvmm/assist.js';
import { CR, GPR, SEG, copyState, emptyState, type X64State } from '../../src/nvmm/state.js';
import { DecodeStatus, DecodedInsn, MNEMONICS, OperandKind, decode } from '../../src/x86/decoder.js';
import { EmuRegisters, EmuStatus, emulate, type EmuMemory } from '../../src/x86/emulate.js';
import { PageWalkResult, PageWalker, type PhysMemoryAccess } from '../../src/x86/page-walk.js';

export type RunScript = (vcpu: FakeVcpu) => VcpuExit;

export interface FakeBackendOptions {
  /** What run() does (default: `interpret`). */
  run?: RunScript;
  /** Raw OUTS exits say seg = -1, so the assist must find the segment itself (default true). */
  outsSegUnknown?: boolean;
  /** Memory exits carry instBytes (default true; false makes assistMem fetch the instruction). */
  instBytes?: boolean;
  /** Instruction budget of one run() of the interpreter (default 100000). */
  maxSteps?: number;
  /** Limits to report instead of the defaults (4 vCPUs, 64 GiB of guest-physical space). */
  capability?: Partial<Pick<Capability, 'maxVcpus' | 'maxRam'>>;
  /** Offer an in-kernel irqchip, as KVM does (default false); its line changes are recorded (FakeMachine.irqLines). */
  irqchip?: boolean;
}

export class FakeBackend implements Backend {
  readonly name = 'soft' as const;
  readonly opts: Required<Omit<FakeBackendOptions, 'run' | 'capability' | 'irqchip'>> & { run: RunScript };
  private readonly irqchip: boolean;
  private readonly limits: Pick<Capability, 'maxVcpus' | 'maxRam'>;
  readonly machines: FakeMachine[] = [];

  constructor(opts: FakeBackendOptions = {}) {
    this.opts = {
      run: opts.run ?? interpret,
      outsSegUnknown: opts.outsSegUnknown ?? true,
      instBytes: opts.instBytes ?? true,
      maxSteps: opts.maxSteps ?? 100_000,
    };
    this.limits = { maxVcpus: 4, maxRam: 2 ** 36, ...opts.capability };
    this.irqchip = opts.irqchip ?? false;
  }

  capability(): Capability {
    return { backend: 'soft', ...this.limits, vcpuConf: { cpuid: false, cpuidExit: false, tpr: false }, ...(this.irqchip ? { irqchip: true } : {}) };
  }

  createMachine(): FakeMachine {
    const m = new FakeMachine(this);
    this.machines.push(m);
    return m;
  }
}

export class FakeMachine implements BackendMachine {
  readonly mappings: GpaMapping[] = [];
  readonly vcpus: FakeVcpu[] = [];
  /** With FakeBackendOptions.irqchip: each setIrq(gsi, level) the machine's irqchip got, in order. */
  readonly irqLines: [gsi: number, level: boolean][] = [];
  constructor(readonly backend: FakeBackend) {
    if (backend.capability().irqchip) {
      this.createIrqchip = (): BackendIrqchip => ({ setIrq: (gsi, level) => void this.irqLines.push([gsi, level]) });
    }
  }
  createIrqchip?: () => BackendIrqchip;

  map(mapping: GpaMapping): void {
    this.mappings.push(mapping);
  }

  unmap(mapping: GpaMapping): void {
    const i = this.mappings.indexOf(mapping);
    if (i >= 0) this.mappings.splice(i, 1);
  }

  createVcpu(id: number): FakeVcpu {
    const v = new FakeVcpu(this, id);
    this.vcpus.push(v);
    return v;
  }

  destroy(): void {
    this.mappings.length = 0;
  }

  /** The RAM bytes at guest-physical `gpa` (a view to the end of its mapping), or undefined. */
  ram(gpa: number): Uint8Array | undefined {
    for (const m of this.mappings) {
      if (gpa >= m.gpa && gpa < m.gpa + m.size) {
        const off = m.offset + (gpa - m.gpa);
        return m.memory.bytes.subarray(off, m.offset + m.size);
      }
    }
    return undefined;
  }

  readonly phys: PhysMemoryAccess = {
    read32: (gpa: number): number => {
      const b = this.ram(gpa);
      return b ? b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24) : -1;
    },
  };
}

export class FakeVcpu implements BackendVcpu {
  readonly state: X64State = resetState();
  readonly events: VcpuEvent[] = [];
  /** Every exit run() returned, in order. */
  readonly exits: VcpuExit[] = [];
  runs = 0;
  constructor(readonly machine: FakeMachine, readonly id: number) {}

  getState(state: X64State, mask: number): void {
    copyState(state, this.state, mask);
  }

  setState(state: X64State, mask: number): void {
    copyState(this.state, state, mask);
  }

  inject(event: VcpuEvent): void {
    this.events.push(event);
  }

  run(): VcpuExit {
    this.runs++;
    const exit = this.machine.backend.opts.run(this);
    this.exits.push(exit);
    return exit;
  }

  stopHandle(): StopHandle {
    return { flag: new SharedArrayBuffer(4) };
  }

  setCpuidPolicy(_policy: CpuidPolicy): void {}
  setTprExit(_enabled: boolean): void {}
  destroy(): void {}
}

/** NVMM's x86 reset state (spec §0.2): real mode, CS F000:FFF0 with base 0xFFFF0000, RDX 0x600. */
export function resetState(): X64State {
  const s = emptyState();
  for (let i = 0; i < 6; i++) {
    const seg = s.segs[i]!;
    seg.limit = 0xffff;
    seg.attrib = { type: 3, s: true, dpl: 0, p: true, avl: false, l: false, def: false, g: false };
  }
  s.segs[SEG.CS]!.selector = 0xf000;
  s.segs[SEG.CS]!.base = 0xffff0000n;
  s.segs[SEG.CS]!.attrib.type = 0xb;
  s.crs[CR.CR0] = 0x60000010n;
  s.gprs[GPR.RIP] = 0xfff0n;
  s.gprs[GPR.RDX] = 0x600n;
  s.gprs[GPR.RFLAGS] = 0x2n;
  return s;
}

// ---------------------------------------------------------------------------------------------
// The interpreter

const U32 = 0xffffffffn;

/** Thrown by the interpreter's memory when an access has no RAM behind it. */
class MmioFault {
  constructor(readonly gpa: number, readonly write: boolean) {}
}

function load(s: X64State, r: EmuRegisters): void {
  for (let n = 0; n < 16; n++) {
    r.gpr[2 * n] = Number(s.gprs[n]! & U32);
    r.gpr[2 * n + 1] = Number(s.gprs[n]! >> 32n);
  }
  r.ripLo = Number(s.gprs[GPR.RIP]! & U32);
  r.ripHi = Number(s.gprs[GPR.RIP]! >> 32n);
  r.rflags = Number(s.gprs[GPR.RFLAGS]! & U32);
  for (let i = 0; i < 6; i++) {
    r.segBase[2 * i] = Number(s.segs[i]!.base & U32);
    r.segBase[2 * i + 1] = Number(s.segs[i]!.base >> 32n);
  }
}

function store(r: EmuRegisters, s: X64State): void {
  for (let n = 0; n < 16; n++) s.gprs[n] = BigInt(r.gpr[2 * n]!) | (BigInt(r.gpr[2 * n + 1]!) << 32n);
  s.gprs[GPR.RIP] = BigInt(r.ripLo) | (BigInt(r.ripHi) << 32n);
  s.gprs[GPR.RFLAGS] = BigInt(r.rflags >>> 0);
}

const walker = new PageWalker();
const walk = new PageWalkResult();

function translate(vcpu: FakeVcpu, lo: number, hi: number): number {
  const s = vcpu.state;
  const paging = {
    cr0: Number(s.crs[CR.CR0]! & U32), cr3: Number(s.crs[CR.CR3]! & 0xfffffffffffffn),
    cr4: Number(s.crs[CR.CR4]! & U32), efer: Number(s.msrs[0]! & U32),
  };
  if (!walker.walk(paging, vcpu.machine.phys, lo, hi, 0, walk)) {
    throw new Error(`fake CPU: page fault at ${hi.toString(16)}:${lo.toString(16)}`);
  }
  return walk.gpa;
}

/** Runs the guest until an exit (see the module comment). */
export function interpret(vcpu: FakeVcpu): VcpuExit {
  const { opts } = vcpu.machine.backend;
  const s = vcpu.state;
  const mode = cpuMode(s);
  const regs = new EmuRegisters();
  const insn = new DecodedInsn();
  load(s, regs);
  const mem: EmuMemory = {
    read(lo, hi, data) {
      for (let i = 0; i < data.length; i++) {
        const gpa = translate(vcpu, (lo + i) >>> 0, hi);
        const b = vcpu.machine.ram(gpa);
        if (!b) throw new MmioFault(gpa, false);
        data[i] = b[0]!;
      }
    },
    write(lo, hi, data) {
      // check every byte first: an access is all RAM or it exits before touching anything
      const gpas = Array.from(data, (_, i) => translate(vcpu, (lo + i) >>> 0, hi));
      for (const gpa of gpas) if (!vcpu.machine.ram(gpa)) throw new MmioFault(gpa, true);
      gpas.forEach((gpa, i) => (vcpu.machine.ram(gpa)![0] = data[i]!));
    },
  };
  for (let step = 0; step < opts.maxSteps; step++) {
    const ripLin = mode === 64 ? [regs.ripLo, regs.ripHi] : [(regs.ripLo + regs.segBase[2]!) >>> 0, 0];
    const code = new Uint8Array(15);
    let n = 0;
    for (; n < 15; n++) {
      const b = vcpu.machine.ram(translate(vcpu, (ripLin[0]! + n) >>> 0, ripLin[1]!));
      if (!b) break;
      code[n] = b[0]!;
    }
    decode(code, 0, n, mode, insn);
    const npc = (): bigint => (BigInt(regs.ripLo) | (BigInt(regs.ripHi) << 32n)) + BigInt(insn.length);
    if (insn.status !== DecodeStatus.Ok) {
      store(regs, s);
      return { kind: 'invalid', reason: `fake CPU: cannot decode ${Array.from(code.subarray(0, n), (x) => x.toString(16)).join(' ')}` };
    }
    const name = MNEMONICS[insn.mnemonic]!;
    switch (name) {
      case 'rdmsr':
        store(regs, s);
        return { kind: 'rdmsr', msr: regs.get(1, 4), npc: npc() };
      case 'hlt':
        regs.ripLo += insn.length;
        store(regs, s);
        return { kind: 'halted' };
      case 'in': case 'out': case 'ins': case 'outs': {
        store(regs, s);
        return ioExit(insn, name, regs, npc(), opts.outsSegUnknown);
      }
    }
    let st: EmuStatus;
    try {
      st = emulate(insn, regs, mem);
    } catch (e) {
      if (!(e instanceof MmioFault)) throw e;
      store(regs, s);
      return {
        kind: 'memory', gpa: e.gpa, prot: e.write ? 'write' : 'read',
        ...(opts.instBytes ? { instBytes: code.slice(0, insn.length) } : {}),
      };
    }
    if (st === EmuStatus.Unsupported) {
      store(regs, s);
      return { kind: 'invalid', reason: `fake CPU: '${name}' is not emulated` };
    }
  }
  store(regs, s);
  return { kind: 'invalid', reason: `fake CPU: no exit after ${opts.maxSteps} instructions` };
}

function ioExit(insn: DecodedInsn, name: string, regs: EmuRegisters, npc: bigint, outsSegUnknown: boolean): IoExit {
  const str = name === 'ins' || name === 'outs';
  const isIn = name === 'in' || name === 'ins';
  const data = isIn ? insn.ops[0]! : insn.ops[1]!;
  const portOp = isIn ? insn.ops[1]! : insn.ops[0]!;
  const port = portOp.kind === OperandKind.Imm ? portOp.imm : regs.get(2, 2);
  let seg = -1;
  if (name === 'ins') seg = SEG.ES;
  else if (name === 'outs' && !outsSegUnknown) seg = insn.segment >= 0 ? insn.segment : SEG.DS;
  return {
    kind: 'io', in: isIn, port, seg, addressSize: insn.addrSize, operandSize: data.size,
    rep: str && insn.lastRep !== 0, str, npc,
  };
}

