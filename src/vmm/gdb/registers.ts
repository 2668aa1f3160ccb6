/**
 * The registers GDB sees, as a table: their order is the `g` packet's and the register numbers of
 * `p`/`P`, and target.xml (served through qXfer:features:read) is generated from the same table,
 * so the two cannot disagree. The layout is GDB's amd64 one (features org.gnu.gdb.i386.core,
 * .sse, .linux-less segments) with the control registers and EFER as a system feature of ours;
 * values come from and go to the nvmm/ state groups.
 */
import { CR, GPR, MSR, SEG, STATE, type X64State } from '../../nvmm/state.js';

interface RegisterDef {
  name: string;
  bits: 32 | 64 | 80 | 128;
  /** target.xml type. */
  type: string;
  group?: 'general' | 'float' | 'vector' | 'system';
  feature: 'core' | 'sse' | 'segments' | 'sys';
  /** The state groups it lives in. */
  state: number;
  get(s: X64State): bigint;
  set(s: X64State, v: bigint): void;
}

const gpr = (name: string, i: number, type = 'int64'): RegisterDef => ({
  name, bits: 64, type, group: 'general', feature: 'core', state: STATE.GPRS,
  get: (s) => s.gprs[i]!,
  set: (s, v) => void (s.gprs[i] = v),
});

/** A segment register as GDB shows it: the selector (the hidden part is left as it is). */
const seg = (name: string, i: number): RegisterDef => ({
  name, bits: 32, type: 'int32', group: 'general', feature: 'core', state: STATE.SEGS,
  get: (s) => BigInt(s.segs[i]!.selector),
  set: (s, v) => void (s.segs[i]!.selector = Number(v & 0xffffn)),
});

const le = (bytes: Uint8Array, off: number, len: number): bigint => {
  let v = 0n;
  for (let k = len - 1; k >= 0; k--) v = (v << 8n) | BigInt(bytes[off + k]!);
  return v;
};
const putLe = (bytes: Uint8Array, off: number, len: number, v: bigint): void => {
  for (let k = 0; k < len; k++) bytes[off + k] = Number((v >> BigInt(8 * k)) & 0xffn);
};

/** ST(i): the 80-bit value in FpuState.sts (stack order, as FXSAVE keeps it). */
const st = (i: number): RegisterDef => ({
  name: `st${i}`, bits: 80, type: 'i387_ext', feature: 'core', state: STATE.FPU,
  get: (s) => le(s.fpu.sts, 16 * i, 10),
  set: (s, v) => putLe(s.fpu.sts, 16 * i, 10, v),
});

const fpu32 = (name: string, get: (s: X64State) => number, set: (s: X64State, v: number) => void): RegisterDef => ({
  name, bits: 32, type: 'int', group: 'float', feature: 'core', state: STATE.FPU,
  get: (s) => BigInt(get(s) >>> 0),
  set: (s, v) => set(s, Number(v & 0xffffffffn)),
});

const xmm = (i: number): RegisterDef => ({
  name: `xmm${i}`, bits: 128, type: 'vec128', feature: 'sse', state: STATE.FPU,
  get: (s) => le(s.fpu.xmms, 16 * i, 16),
  set: (s, v) => putLe(s.fpu.xmms, 16 * i, 16, v),
});

const sys = (name: string, state: number, get: (s: X64State) => bigint, set: (s: X64State, v: bigint) => void): RegisterDef => ({
  name, bits: 64, type: 'int64', group: 'system', feature: 'sys', state, get, set,
});

const TOP_SHIFT = 11;

/**
 * The x87 tag word GDB shows (two bits per physical register: 00 valid, 01 zero, 10 special, 11
 * empty), from FXSAVE's abridged one (a bit per register: not empty) and the registers' values.
 */
export function fullTagWord(ftw: number, fsw: number, sts: Uint8Array): number {
  const top = (fsw >> TOP_SHIFT) & 7;
  let tag = 0;
  for (let phys = 0; phys < 8; phys++) {
    let t = 3;
    if (ftw & (1 << phys)) {
      const i = (phys - top + 8) & 7; // ST(i) is physical register TOP + i
      const exp = (sts[16 * i + 8]! | (sts[16 * i + 9]! << 8)) & 0x7fff;
      const mant = le(sts, 16 * i, 8);
      if (exp === 0x7fff) t = 2;
      else if (exp === 0) t = mant === 0n ? 1 : 2;
      else t = mant >> 63n ? 0 : 2; // no integer bit: unnormal
    }
    tag |= t << (2 * phys);
  }
  return tag;
}

/** FXSAVE's abridged tag (a bit per register: not empty) from a full tag word. */
export function abridgedTag(tag: number): number {
  let ftw = 0;
  for (let phys = 0; phys < 8; phys++) if (((tag >> (2 * phys)) & 3) !== 3) ftw |= 1 << phys;
  return ftw;
}

const low32 = (v: bigint) => Number(v & 0xffffffffn);

/** In GDB's amd64 order: the `g` packet is these, little-endian, one after the other. */
export const REGISTERS: readonly RegisterDef[] = [
  gpr('rax', GPR.RAX), gpr('rbx', GPR.RBX), gpr('rcx', GPR.RCX), gpr('rdx', GPR.RDX),
  gpr('rsi', GPR.RSI), gpr('rdi', GPR.RDI), gpr('rbp', GPR.RBP, 'data_ptr'), gpr('rsp', GPR.RSP, 'data_ptr'),
  gpr('r8', GPR.R8), gpr('r9', GPR.R9), gpr('r10', GPR.R10), gpr('r11', GPR.R11),
  gpr('r12', GPR.R12), gpr('r13', GPR.R13), gpr('r14', GPR.R14), gpr('r15', GPR.R15),
  gpr('rip', GPR.RIP, 'code_ptr'),
  {
    name: 'eflags', bits: 32, type: 'i386_eflags', group: 'general', feature: 'core', state: STATE.GPRS,
    get: (s) => s.gprs[GPR.RFLAGS]! & 0xffffffffn,
    set: (s, v) => void (s.gprs[GPR.RFLAGS] = v & 0xffffffffn),
  },
  seg('cs', SEG.CS), seg('ss', SEG.SS), seg('ds', SEG.DS), seg('es', SEG.ES), seg('fs', SEG.FS), seg('gs', SEG.GS),
  st(0), st(1), st(2), st(3), st(4), st(5), st(6), st(7),
  fpu32('fctrl', (s) => s.fpu.fcw, (s, v) => void (s.fpu.fcw = v & 0xffff)),
  fpu32('fstat', (s) => s.fpu.fsw, (s, v) => void (s.fpu.fsw = v & 0xffff)),
  fpu32('ftag', (s) => fullTagWord(s.fpu.ftw, s.fpu.fsw, s.fpu.sts), (s, v) => void (s.fpu.ftw = abridgedTag(v))),
  fpu32('fiseg', (s) => low32(s.fpu.fip >> 32n), (s, v) => void (s.fpu.fip = (s.fpu.fip & 0xffffffffn) | (BigInt(v >>> 0) << 32n))),
  fpu32('fioff', (s) => low32(s.fpu.fip), (s, v) => void (s.fpu.fip = (s.fpu.fip & ~0xffffffffn) | BigInt(v >>> 0))),
  fpu32('foseg', (s) => low32(s.fpu.fdp >> 32n), (s, v) => void (s.fpu.fdp = (s.fpu.fdp & 0xffffffffn) | (BigInt(v >>> 0) << 32n))),
  fpu32('fooff', (s) => low32(s.fpu.fdp), (s, v) => void (s.fpu.fdp = (s.fpu.fdp & ~0xffffffffn) | BigInt(v >>> 0))),
  fpu32('fop', (s) => s.fpu.fop, (s, v) => void (s.fpu.fop = v & 0x7ff)),
  ...Array.from({ length: 16 }, (_, i) => xmm(i)),
  {
    name: 'mxcsr', bits: 32, type: 'i386_mxcsr', group: 'vector', feature: 'sse', state: STATE.FPU,
    get: (s) => BigInt(s.fpu.mxcsr >>> 0),
    set: (s, v) => void (s.fpu.mxcsr = Number(v & 0xffffffffn)),
  },
  {
    name: 'fs_base', bits: 64, type: 'int', feature: 'segments', state: STATE.SEGS,
    get: (s) => s.segs[SEG.FS]!.base,
    set: (s, v) => void (s.segs[SEG.FS]!.base = v),
  },
  {
    name: 'gs_base', bits: 64, type: 'int', feature: 'segments', state: STATE.SEGS,
    get: (s) => s.segs[SEG.GS]!.base,
    set: (s, v) => void (s.segs[SEG.GS]!.base = v),
  },
  sys('cr0', STATE.CRS, (s) => s.crs[CR.CR0]!, (s, v) => void (s.crs[CR.CR0] = v)),
  sys('cr2', STATE.CRS, (s) => s.crs[CR.CR2]!, (s, v) => void (s.crs[CR.CR2] = v)),
  sys('cr3', STATE.CRS, (s) => s.crs[CR.CR3]!, (s, v) => void (s.crs[CR.CR3] = v)),
  sys('cr4', STATE.CRS, (s) => s.crs[CR.CR4]!, (s, v) => void (s.crs[CR.CR4] = v)),
  sys('cr8', STATE.CRS, (s) => s.crs[CR.CR8]!, (s, v) => void (s.crs[CR.CR8] = v)),
  sys('efer', STATE.MSRS, (s) => s.msrs[MSR.EFER]!, (s, v) => void (s.msrs[MSR.EFER] = v)),
];

/** Every state group a register lives in. */
export const REGISTER_STATE = REGISTERS.reduce((m, r) => m | r.state, 0);

/** Byte offsets of each register in the `g` packet, and its total size. */
const OFFSETS: number[] = [];
export const REGISTERS_SIZE = REGISTERS.reduce((off, r) => {
  OFFSETS.push(off);
  return off + r.bits / 8;
}, 0);

/** The `g` packet's bytes from the state (all of REGISTER_STATE fetched). */
export function registerBytes(s: X64State): Uint8Array {
  const out = new Uint8Array(REGISTERS_SIZE);
  REGISTERS.forEach((r, n) => putLe(out, OFFSETS[n]!, r.bits / 8, r.get(s) & ((1n << BigInt(r.bits)) - 1n)));
  return out;
}

/** Register n's bytes, or null when there is no register n. */
export function oneRegisterBytes(s: X64State, n: number): Uint8Array | null {
  const r = REGISTERS[n];
  if (!r) return null;
  const out = new Uint8Array(r.bits / 8);
  putLe(out, 0, r.bits / 8, r.get(s) & ((1n << BigInt(r.bits)) - 1n));
  return out;
}

/**
 * Writes `bytes` (a `G` packet: a prefix of the layout is allowed, as GDB may send fewer bytes)
 * into the state; returns the state groups changed, or -1 for a bad length.
 */
export function setRegisterBytes(s: X64State, bytes: Uint8Array): number {
  let mask = 0;
  for (let n = 0; n < REGISTERS.length; n++) {
    const r = REGISTERS[n]!;
    const off = OFFSETS[n]!;
    if (off >= bytes.length) break;
    if (off + r.bits / 8 > bytes.length) return -1;
    r.set(s, le(bytes, off, r.bits / 8));
    mask |= r.state;
  }
  return mask;
}

/** Sets register n from its bytes; returns the state group changed, or -1 (no such register, bad length). */
export function setOneRegister(s: X64State, n: number, bytes: Uint8Array): number {
  const r = REGISTERS[n];
  if (!r || bytes.length !== r.bits / 8) return -1;
  r.set(s, le(bytes, 0, bytes.length));
  return r.state;
}

const FEATURES: Record<RegisterDef['feature'], string> = {
  core: 'org.gnu.gdb.i386.core',
  sse: 'org.gnu.gdb.i386.sse',
  segments: 'org.gnu.gdb.i386.segments',
  sys: 'org.tsvmm.x86.sys',
};

/** The core feature's types GDB expects to be defined by the description (eflags and mxcsr bit fields, vec128). */
const CORE_TYPES = `<flags id="i386_eflags" size="4">
<field name="CF" start="0" end="0"/><field name="" start="1" end="1"/><field name="PF" start="2" end="2"/>
<field name="AF" start="4" end="4"/><field name="ZF" start="6" end="6"/><field name="SF" start="7" end="7"/>
<field name="TF" start="8" end="8"/><field name="IF" start="9" end="9"/><field name="DF" start="10" end="10"/>
<field name="OF" start="11" end="11"/><field name="NT" start="14" end="14"/><field name="RF" start="16" end="16"/>
<field name="VM" start="17" end="17"/><field name="AC" start="18" end="18"/><field name="VIF" start="19" end="19"/>
<field name="VIP" start="20" end="20"/><field name="ID" start="21" end="21"/>
</flags>`;
const SSE_TYPES = `<vector id="v4f" type="ieee_single" count="4"/>
<vector id="v2d" type="ieee_double" count="2"/><vector id="v16i8" type="int8" count="16"/>
<vector id="v8i16" type="int16" count="8"/><vector id="v4i32" type="int32" count="4"/>
<vector id="v2i64" type="int64" count="2"/>
<union id="vec128"><field name="v4_float" type="v4f"/><field name="v2_double" type="v2d"/>
<field name="v16_int8" type="v16i8"/><field name="v8_int16" type="v8i16"/><field name="v4_int32" type="v4i32"/>
<field name="v2_int64" type="v2i64"/><field name="uint128" type="uint128"/></union>
<flags id="i386_mxcsr" size="4">
<field name="IE" start="0" end="0"/><field name="DE" start="1" end="1"/><field name="ZE" start="2" end="2"/>
<field name="OE" start="3" end="3"/><field name="UE" start="4" end="4"/><field name="PE" start="5" end="5"/>
<field name="DAZ" start="6" end="6"/><field name="IM" start="7" end="7"/><field name="DM" start="8" end="8"/>
<field name="ZM" start="9" end="9"/><field name="OM" start="10" end="10"/><field name="UM" start="11" end="11"/>
<field name="PM" start="12" end="12"/><field name="FZ" start="15" end="15"/>
</flags>`;

/** target.xml: the architecture and every register of REGISTERS, by feature, numbered in order. */
export function targetXml(): string {
  const parts = ['<?xml version="1.0"?>', '<!DOCTYPE target SYSTEM "gdb-target.dtd">', '<target version="1.0">', '<architecture>i386:x86-64</architecture>'];
  for (const [key, name] of Object.entries(FEATURES) as [RegisterDef['feature'], string][]) {
    parts.push(`<feature name="${name}">`);
    if (key === 'core') parts.push(CORE_TYPES);
    if (key === 'sse') parts.push(SSE_TYPES);
    REGISTERS.forEach((r, n) => {
      if (r.feature !== key) return;
      parts.push(`<reg name="${r.name}" bitsize="${r.bits}" type="${r.type}" regnum="${n}"${r.group ? ` group="${r.group}"` : ''}/>`);
    });
    parts.push('</feature>');
  }
  parts.push('</target>');
  return parts.join('\n');
}
