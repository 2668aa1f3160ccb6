/**
 * libnvmm's assists: turn an io or memory exit into device callbacks (nvmm_assist_io,
 * nvmm_assist_mem). A callback sees one access: for a read (IN, MMIO load) it fills `data`;
 * for a write it reads `data`.
 *
 * Two paths, chosen by the exit:
 *  A. The exit carries `data` (KVM: the backend executed the instruction): only the device
 *     accesses remain; the callbacks are called on `data`.
 *  B. A raw exit without `data` (the soft backend, like NVMM's kernel part): the assist emulates
 *     the instruction through the vCPU's state and guest memory, as libnvmm does:
 *     - assistIo: IN/OUT of 1/2/4 bytes (a 4-byte IN zero-extends RAX, 1/2 bytes merge into
 *       AL/AX); INS/OUTS through ES:rDI / DS:rSI (or the exit's `seg`; with seg = -1 the override
 *       is found by decoding the OUTS at RIP), honouring DF and the address size; REP with DF = 0
 *       is batched up to IO_BATCH_BYTES per exit (the callback still sees one element per call,
 *       guest memory is moved as one block); RCX drops by the elements done, RIP = npc only when
 *       RCX reaches 0 (or without REP). String data in guest memory with no RAM behind it goes to
 *       the optional `mem` callback (libnvmm's mem callback); without one it is a TSVMM_ASSIST error.
 *     - assistMem: fetches the instruction (exit.instBytes, else guest memory at CS:RIP through the
 *       paging), decodes it in the vCPU's mode and runs it through x86/emulate.ts: operands in RAM
 *       are accessed directly, the others through the callback. One call = one instruction, or one
 *       iteration of a REP string instruction (RIP stays until the last one, so the guest exits again).
 *     Guest-virtual addresses are translated with the vCPU's paging (CR0/CR3/CR4/EFER, the page
 *     walker over machine.physMemory, with the access's permission checks).
 *  Whatever cannot be emulated (undecodable bytes, an instruction emulate.ts lacks, a failed page
 *  walk, a write to read-only RAM) is a TsvmmError('TSVMM_ASSIST') naming the bytes and RIP; the
 *  vCPU's registers are then left as they were (device callbacks already made are not undone).
 */
import { hex, TWO32 } from '../common/bits.js';
import { TsvmmError } from '../common/errors.js';
import { PAGE_SIZE } from '../memory/page.js';
import { DecodeStatus, DecodedInsn, MNEMONICS, decode, type CpuMode } from '../x86/decoder.js';
import { CR0_PE, EFER_LMA } from '../x86/control-regs.js';
import { EmuRegisters, EmuStatus, emulate, type EmuMemory } from '../x86/emulate.js';
import { FLAG_AC, FLAG_DF } from '../x86/flags.js';
import {
  ACCESS_FETCH, ACCESS_USER, ACCESS_WRITE, PageWalkResult, PageWalker, WALK_AC, WALK_PAGE_FAULT, WALK_OK,
  accessDenied, type PagingState,
} from '../x86/page-walk.js';
import { PROT } from './backend.js';
import type { IoExit, MemoryExit } from './exit.js';
import type { Vcpu } from './machine.js';
import { CR, GPR, MSR, SEG, STATE, type X64State } from './state.js';

/** One port access (struct nvmm_io). */
export interface IoAccess {
  port: number;
  in: boolean;
  /** 1, 2 or 4 bytes. */
  size: number;
  data: Uint8Array;
}

/** One guest-physical memory access (struct nvmm_mem). */
export interface MemAccess {
  gpa: number;
  write: boolean;
  size: number;
  data: Uint8Array;
}

export type IoCallback = (io: IoAccess) => void;
export type MemCallback = (mem: MemAccess) => void;

function lastExit<K extends 'io' | 'memory'>(vcpu: Vcpu, kind: K): K extends 'io' ? IoExit : MemoryExit {
  const exit = vcpu.exit;
  if (exit.kind !== kind) throw new TsvmmError('TSVMM_ASSIST', `assist${kind === 'io' ? 'Io' : 'Mem'} called after a '${exit.kind}' exit`);
  return exit as K extends 'io' ? IoExit : MemoryExit;
}

/**
 * Emulates the port I/O of the vCPU's last exit through `callback`, once per element (so a
 * `rep outsb` of five bytes calls it five times, in order). `mem` serves INS/OUTS data that lies
 * in guest-physical memory with no RAM behind it (raw exits only).
 */
export function assistIo(vcpu: Vcpu, callback: IoCallback, mem?: MemCallback): void {
  const exit = lastExit(vcpu, 'io');
  if (!exit.data) {
    rawIo(vcpu, exit, callback, mem);
    return;
  }
  // The backend has executed the instruction's memory side: only the device accesses remain.
  const size = exit.operandSize;
  const data = exit.data;
  if (data.length === size) {
    callback({ port: exit.port, in: exit.in, size, data });
    return;
  }
  for (let off = 0; off < data.length; off += size) {
    callback({ port: exit.port, in: exit.in, size, data: data.subarray(off, off + size) });
  }
}

/** Emulates the guest-physical access of the vCPU's last exit through `callback`. */
export function assistMem(vcpu: Vcpu, callback: MemCallback): void {
  const exit = lastExit(vcpu, 'memory');
  if (!exit.data) {
    rawMem(vcpu, exit, callback);
    return;
  }
  callback({ gpa: exit.gpa, write: exit.prot === 'write', size: exit.data.length, data: exit.data });
}

// ---------------------------------------------------------------------------------------------
// Path B: raw exits (the soft backend, as NVMM's kernel part): the assist emulates the instruction
// through the vCPU's state and guest memory, as nvmm_assist_io / nvmm_assist_mem do.

/** REP INS/OUTS with DF = 0 move up to this many bytes per exit (libnvmm's batch size). */
export const IO_BATCH_BYTES = 32;

const STATE_EMU = STATE.GPRS | STATE.SEGS | STATE.CRS | STATE.MSRS;

/** The code size of the vCPU's current mode: CS.L in long mode, else CS.D (real mode: 16). */
export function cpuMode(s: X64State): CpuMode {
  const cs = s.segs[SEG.CS]!.attrib;
  if ((s.msrs[MSR.EFER]! & BigInt(EFER_LMA)) !== 0n && cs.l) return 64;
  if ((s.crs[CR.CR0]! & BigInt(CR0_PE)) === 0n) return 16;
  return cs.def ? 32 : 16;
}

function hexBytes(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}

function linearHex(lo: number, hi: number): string {
  return hi ? `0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}` : `0x${lo.toString(16)}`;
}

/**
 * Guest memory as the assists reach it: linear address -> guest-physical through the vCPU's
 * paging (the page walker over machine.physMemory), then RAM directly (machine.findMapping) or,
 * where nothing is mapped, the memory callback. Accesses that cross a page are split.
 */
class GuestMemory implements EmuMemory {
  private readonly walker = new PageWalker();
  private readonly walk = new PageWalkResult();
  private readonly paging: PagingState;
  private readonly accessFlags: number;

  constructor(private readonly vcpu: Vcpu, s: X64State, private readonly mmio: MemCallback | undefined, private readonly what: string) {
    this.paging = {
      cr0: Number(s.crs[CR.CR0]! & 0xffffffffn),
      cr3: Number(s.crs[CR.CR3]! & 0xfffffffffffffn),
      cr4: Number(s.crs[CR.CR4]! & 0xffffffffn),
      efer: Number(s.msrs[MSR.EFER]! & 0xffffffffn),
    };
    const user = (this.paging.cr0 & CR0_PE) !== 0 && (s.segs[SEG.CS]!.selector & 3) === 3;
    this.accessFlags = (user ? ACCESS_USER : 0) | ((Number(s.gprs[GPR.RFLAGS]! & 0xffffffffn) & FLAG_AC) !== 0 ? WALK_AC : 0);
  }

  /** Guest-physical address of linear (lo, hi), or -1 where the walk fails and `soft` is set. */
  translate(lo: number, hi: number, write: boolean, fetch = false, soft = false): number {
    const flags = this.accessFlags | (write ? ACCESS_WRITE : 0) | (fetch ? ACCESS_FETCH : 0);
    if (!this.walker.walk(this.paging, this.vcpu.machine.physMemory, lo, hi, flags, this.walk) ||
      accessDenied(this.paging, this.walk.prot, flags)) {
      if (soft) return -1;
      throw new TsvmmError('TSVMM_ASSIST', `${this.what}: the guest-virtual address ${linearHex(lo, hi)} does not translate for a ${write ? 'write' : 'read'} (${this.walk.status === WALK_PAGE_FAULT || this.walk.status === WALK_OK ? 'page fault' : 'non-canonical'})`);
    }
    return this.walk.gpa;
  }

  read(lo: number, hi: number, data: Uint8Array): void {
    this.access(lo, hi, data, false);
  }

  write(lo: number, hi: number, data: Uint8Array): void {
    this.access(lo, hi, data, true);
  }

  private access(lo: number, hi: number, data: Uint8Array, write: boolean): void {
    let done = 0;
    while (done < data.length) {
      const inPage = PAGE_SIZE - (lo & (PAGE_SIZE - 1));
      const n = Math.min(inPage, data.length - done);
      this.physical(this.translate(lo, hi, write), data.subarray(done, done + n), write);
      done += n;
      lo += n;
      if (lo >= TWO32) { lo -= TWO32; hi = (hi + 1) >>> 0; }
    }
  }

  private physical(gpa: number, chunk: Uint8Array, write: boolean): void {
    const m = this.vcpu.machine.findMapping(gpa);
    if (!m) {
      if (!this.mmio) {
        throw new TsvmmError('TSVMM_ASSIST', `${this.what}: guest-physical ${hex(gpa)} is not RAM and no memory callback was given`);
      }
      this.mmio({ gpa, write, size: chunk.length, data: chunk });
      return;
    }
    if (!(m.prot & (write ? PROT.WRITE : PROT.READ))) {
      throw new TsvmmError('TSVMM_ASSIST', `${this.what}: guest-physical ${hex(gpa)} is mapped without ${write ? 'write' : 'read'} permission`);
    }
    const off = m.offset + (gpa - m.gpa);
    const ram = m.memory.bytes;
    if (write) ram.set(chunk, off);
    else chunk.set(ram.subarray(off, off + chunk.length));
  }

  /** Up to 15 instruction bytes at linear (lo, hi), from RAM only; stops at the first byte it cannot reach. */
  fetch(lo: number, hi: number): Uint8Array {
    const out = new Uint8Array(15);
    let n = 0;
    while (n < 15) {
      const gpa = this.translate(lo, hi, false, true, true);
      const m = gpa < 0 ? undefined : this.vcpu.machine.findMapping(gpa);
      if (!m) break;
      const take = Math.min(15 - n, PAGE_SIZE - (lo & (PAGE_SIZE - 1)));
      const off = m.offset + (gpa - m.gpa);
      out.set(m.memory.bytes.subarray(off, off + take), n);
      n += take;
      lo += take;
      if (lo >= TWO32) { lo -= TWO32; hi = (hi + 1) >>> 0; }
    }
    return out.subarray(0, n);
  }
}

const emuRegs = new EmuRegisters();
const emuInsn = new DecodedInsn();
const U32 = 0xffffffffn;

function loadRegs(s: X64State, r: EmuRegisters): void {
  for (let n = 0; n < 16; n++) {
    const v = s.gprs[n]!;
    r.gpr[2 * n] = Number(v & U32);
    r.gpr[2 * n + 1] = Number(v >> 32n);
  }
  const rip = s.gprs[GPR.RIP]!;
  r.ripLo = Number(rip & U32);
  r.ripHi = Number(rip >> 32n);
  r.rflags = Number(s.gprs[GPR.RFLAGS]! & U32);
  for (let i = 0; i < 6; i++) {
    const b = s.segs[i]!.base;
    r.segBase[2 * i] = Number(b & U32);
    r.segBase[2 * i + 1] = Number((b >> 32n) & U32);
  }
}

function storeRegs(r: EmuRegisters, s: X64State): void {
  for (let n = 0; n < 16; n++) s.gprs[n] = BigInt(r.gpr[2 * n]!) | (BigInt(r.gpr[2 * n + 1]!) << 32n);
  s.gprs[GPR.RIP] = BigInt(r.ripLo) | (BigInt(r.ripHi) << 32n);
  s.gprs[GPR.RFLAGS] = (s.gprs[GPR.RFLAGS]! & ~U32) | BigInt(r.rflags >>> 0);
}

/** The linear address of `seg`:`offset` (64-bit mode: only FS/GS have a base; else wraps at 32 bits). */
function linear(s: X64State, mode: CpuMode, seg: number, offset: bigint): [number, number] {
  let a = offset;
  if (mode !== 64 || seg === SEG.FS || seg === SEG.GS) a += s.segs[seg]!.base;
  a = mode === 64 ? BigInt.asUintN(64, a) : a & U32;
  return [Number(a & U32), Number(a >> 32n)];
}

/** Writes GPR `reg` at `size` bytes as the CPU does (2 merges, 4 zero-extends, 8 whole). */
function setGprSized(s: X64State, reg: number, size: number, value: bigint): void {
  if (size === 8) s.gprs[reg] = BigInt.asUintN(64, value);
  else if (size === 4) s.gprs[reg] = value & U32;
  else {
    const m = size === 2 ? 0xffffn : 0xffn;
    s.gprs[reg] = (s.gprs[reg]! & ~m) | (value & m);
  }
}

function rawIo(vcpu: Vcpu, exit: IoExit, callback: IoCallback, mem: MemCallback | undefined): void {
  if (exit.npc === undefined) throw new TsvmmError('TSVMM_ASSIST', `raw io exit on port ${exit.port} without npc`);
  const size = exit.operandSize;
  if (size !== 1 && size !== 2 && size !== 4) throw new TsvmmError('TSVMM_ASSIST', `io exit with operand size ${size}`);
  const s = vcpu.getState(exit.str ? STATE_EMU : STATE.GPRS);
  if (!exit.str) {
    const data = new Uint8Array(size);
    if (!exit.in) {
      let v = Number(s.gprs[GPR.RAX]! & U32);
      for (let i = 0; i < size; i++, v >>>= 8) data[i] = v & 0xff;
    }
    callback({ port: exit.port, in: exit.in, size, data });
    if (exit.in) {
      let v = 0;
      for (let i = size - 1; i >= 0; i--) v = v * 256 + data[i]!;
      setGprSized(s, GPR.RAX, size, BigInt(v)); // IN of 32 bits zero-extends RAX, 8/16 bits merge
    }
    s.gprs[GPR.RIP] = exit.npc;
    vcpu.setState(STATE.GPRS);
    return;
  }
  const as = exit.addressSize;
  if (as !== 2 && as !== 4 && as !== 8) throw new TsvmmError('TSVMM_ASSIST', `io exit with address size ${as}`);
  const amask = as === 8 ? 0xffffffffffffffffn : as === 4 ? U32 : 0xffffn;
  let count = 1n;
  if (exit.rep) {
    count = s.gprs[GPR.RCX]! & amask;
    if (count === 0n) {
      s.gprs[GPR.RIP] = exit.npc;
      vcpu.setState(STATE.GPRS);
      return;
    }
  }
  const mode = cpuMode(s);
  const down = (s.gprs[GPR.RFLAGS]! & BigInt(FLAG_DF)) !== 0n;
  const ptr = exit.in ? GPR.RDI : GPR.RSI;
  const seg = exit.in ? SEG.ES : exit.seg >= 0 ? exit.seg : outsSegment(vcpu, s, mode);
  const offset = s.gprs[ptr]! & amask;
  const [lo, hi] = linear(s, mode, seg, offset);
  // REP with DF = 0 is batched: several elements per exit, guest memory moved as one block
  const elems = exit.rep && !down ? Number(count < BigInt(IO_BATCH_BYTES / size) ? count : BigInt(IO_BATCH_BYTES / size)) : 1;
  const block = new Uint8Array(elems * size);
  const guest = new GuestMemory(vcpu, s, mem, `assistIo (${exit.in ? 'ins' : 'outs'} on port ${exit.port})`);
  if (!exit.in) guest.read(lo, hi, block);
  for (let i = 0; i < elems; i++) {
    callback({ port: exit.port, in: exit.in, size, data: block.subarray(i * size, (i + 1) * size) });
  }
  if (exit.in) guest.write(lo, hi, block);
  const moved = BigInt(elems * size);
  setGprSized(s, ptr, as, down ? offset - moved : offset + moved);
  if (exit.rep) {
    count -= BigInt(elems);
    setGprSized(s, GPR.RCX, as, count);
    if (count === 0n) s.gprs[GPR.RIP] = exit.npc;
  } else s.gprs[GPR.RIP] = exit.npc;
  vcpu.setState(STATE.GPRS);
}

/** The segment of an OUTS whose exit did not say: DS, or the override found in its prefixes (libnvmm's fetch_segment). */
function outsSegment(vcpu: Vcpu, s: X64State, mode: CpuMode): number {
  const guest = new GuestMemory(vcpu, s, undefined, 'assistIo');
  const [lo, hi] = linear(s, mode, SEG.CS, s.gprs[GPR.RIP]!);
  const bytes = guest.fetch(lo, hi);
  decode(bytes, 0, bytes.length, mode, emuInsn);
  if (emuInsn.status !== DecodeStatus.Ok) {
    throw new TsvmmError('TSVMM_ASSIST', `assistIo: cannot decode the OUTS at RIP ${hex(s.gprs[GPR.RIP]!)} (bytes ${hexBytes(bytes)})`);
  }
  return emuInsn.segment >= 0 ? emuInsn.segment : SEG.DS;
}

function rawMem(vcpu: Vcpu, exit: MemoryExit, callback: MemCallback): void {
  const s = vcpu.getState(STATE_EMU);
  const mode = cpuMode(s);
  const rip = s.gprs[GPR.RIP]!;
  const guest = new GuestMemory(vcpu, s, callback, `assistMem at RIP ${hex(rip)}`);
  let bytes = exit.instBytes && exit.instBytes.length > 0 ? exit.instBytes : undefined;
  if (bytes) decode(bytes, 0, bytes.length, mode, emuInsn);
  if (!bytes || emuInsn.status === DecodeStatus.Truncated) {
    const [lo, hi] = linear(s, mode, SEG.CS, rip);
    bytes = guest.fetch(lo, hi);
    decode(bytes, 0, bytes.length, mode, emuInsn);
  }
  if (emuInsn.status !== DecodeStatus.Ok) {
    throw new TsvmmError('TSVMM_ASSIST', `assistMem: cannot decode ${hexBytes(bytes)} at RIP ${hex(rip)} (${mode}-bit mode${emuInsn.status === DecodeStatus.Truncated ? ', truncated' : ''})`);
  }
  loadRegs(s, emuRegs);
  const st = emulate(emuInsn, emuRegs, guest);
  if (st === EmuStatus.Unsupported) {
    throw new TsvmmError('TSVMM_ASSIST', `assistMem: '${MNEMONICS[emuInsn.mnemonic]}' (${hexBytes(bytes.subarray(0, emuInsn.length))}) at RIP ${hex(rip)} is not emulated`);
  }
  storeRegs(emuRegs, s);
  vcpu.setState(STATE.GPRS);
}
