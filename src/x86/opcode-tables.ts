/**
 * x86 opcode maps as data: one-byte, 0F, 0F38, 0F3A, x87 (D8-DF) and the VEX-only entries.
 *
 * Written from the Intel SDM Vol. 2 appendix A opcode maps and checked against GNU objdump's output
 * (facts only; no text from any other project). Each map slot holds a `Node`:
 *  - a leaf string `"mnemonic[:flag...] op1,op2,..."` with operands in Intel order (destination first),
 *  - `''` for an invalid encoding (#UD), `'!'` for one objdump shows as a bare `(bad)` (see `pfxs`),
 *  - a split that picks a child by a field of the encoding (see `SplitKind`).
 *
 * Operand tokens (SDM appendix A style; the size letters follow the token):
 *   E  ModRM r/m: GPR or memory        G  ModRM reg: GPR           M  ModRM r/m: memory only
 *   R  ModRM r/m: GPR only              I  immediate                J  relative branch target
 *   O  moffs (absolute address)         A  far pointer ptr16:16/32  S  ModRM reg: segment register
 *   C  ModRM reg: control register      D  ModRM reg: debug register
 *   P  ModRM reg: MMX                   Q  ModRM r/m: MMX or memory N  ModRM r/m: MMX only
 *   V  ModRM reg: XMM/YMM               W  ModRM r/m: XMM/YMM or memory   U  ModRM r/m: XMM/YMM only
 *   H  VEX.vvvv: XMM/YMM                L  imm8[7:4]: XMM/YMM (VEX is4)
 *   Z  GPR from the opcode's low 3 bits (+REX.B)     B  ModRM reg: MPX bound register
 *   X  string source DS:rSI             Y  string destination ES:rDI
 *   fixed: AL CL DXp (port %dx) rAX (accumulator, operand size) eAX (16/32) AX ES CS SS DS FS GS
 *          ST (st(0)) STi (st(r/m)) XMM0 1 (the constant of D0-D3)
 *   sizes: b w d q v(operand size) z(16/32) y(32/64) p(far pointer) s(pseudo-descriptor) t(80-bit)
 *          x(16 or 32 by VEX.L) dq(16) qq(32) a(BOUND pair) ps pd(x) ss(d) sd(q) pi(q) 0(unsized)
 *          bs (imm8 sign-extended to the operand size)
 *
 * Flags: d64 (operand size defaults to 64 in long mode), f64 (64 in long mode, 66 honoured as 16 by
 *   objdump), i64 (invalid in long mode), o64 (long mode only), sx (AT&T size suffix always),
 *   nosx (never), br (branch; indirect targets print `*`), str (string op: F2/F3 are REP),
 *   nomem16... see opcode-flags in decoder.ts.
 */

/** Which field of the encoding picks a child of a split. */
export const SplitKind = {
  Reg: 0, // ModRM.reg (8 children)
  Mod: 1, // [memory form, register form]
  Rm: 2, // ModRM.rm, register form only (8 children)
  Prefix: 3, // mandatory prefix [none, 66, F3, F2]
  RexW: 4, // [W0, W1]
  Mode64: 5, // [16/32-bit modes, 64-bit mode]
  OpSize: 6, // [16, 32, 64]
  AddrSize: 7, // [16, 32, 64]
  VexL: 8, // [L0, L1]
  Mode16: 9, // [16-bit mode, 32/64-bit mode]
  /**
   * [CPU, objdump]: where objdump decodes an encoding differently from a current CPU (MPX hint NOPs
   * objdump names bnd*, VIA PadLock, 386 test registers...), the decoder takes child 0 and the
   * disassembler (`objdumpCompat`) child 1.
   */
  Compat: 10,
  /** [other, RIP-relative memory operand (long mode, ModRM mod 00 r/m 101)] */
  RipRel: 11,
} as const;
export type SplitKind = (typeof SplitKind)[keyof typeof SplitKind];

export interface Split {
  readonly split: SplitKind;
  readonly e: readonly Node[];
  /**
   * Prefix splits only: bit i set = the prefix of column i is not consumed by the opcode (it stays an
   * ordinary prefix, e.g. a REP before a reserved NOP). A column equal to the no-prefix one is never consumed.
   */
  readonly keep?: number;
  /** Prefix splits: bit i set = column i consumes its prefix even if it is the no-prefix instruction. */
  readonly consume?: number;
}
export type Node = string | Split;

const grp = (...e: Node[]): Split => ({ split: SplitKind.Reg, e });
const mod = (mem: Node, reg: Node): Split => ({ split: SplitKind.Mod, e: [mem, reg] });
const rm = (...e: Node[]): Split => ({ split: SplitKind.Rm, e });
const pfx = (none: Node, p66: Node = '', pf3: Node = '', pf2: Node = ''): Split =>
  ({ split: SplitKind.Prefix, e: [none, p66, pf3, pf2] });
/**
 * As `pfx`, for a slot objdump holds as ONE instruction with a prefix requirement rather than as a table
 * of prefix forms: its holes are `'!'` (undefined; objdump prints a bare `(bad)`, naming no prefixes),
 * where a `''` hole prints the prefixes that were not consumed.
 */
const pfxs = (none: Node, p66: Node = '', pf3: Node = '', pf2: Node = ''): Split =>
  ({ split: SplitKind.Prefix, e: [none, p66, pf3, pf2].map((n) => (n === '' ? '!' : n)) });
/** As `pfx`, with `keep` a bit mask of the columns whose prefix is not consumed (see Split.keep). */
/** As `pfx`, every column consuming its prefix (also a column that repeats the no-prefix instruction). */
const pfxc = (none: Node, p66: Node = '', pf3: Node = '', pf2: Node = ''): Split =>
  ({ split: SplitKind.Prefix, e: [none, p66, pf3, pf2], consume: 14 });
/** [other, RIP-relative] (SplitKind.RipRel). */
const rip = (other: Node, ripRel: Node): Split => ({ split: SplitKind.RipRel, e: [other, ripRel] });
const pfxk = (keep: number, none: Node, p66: Node = '', pf3: Node = '', pf2: Node = ''): Split =>
  ({ split: SplitKind.Prefix, e: [none, p66, pf3, pf2], keep });
/** [what a CPU decodes, what objdump decodes] (SplitKind.Compat). */
const od = (cpu: Node, objdump: Node): Split => ({ split: SplitKind.Compat, e: [cpu, objdump] });
const rexw = (w0: Node, w1: Node): Split => ({ split: SplitKind.RexW, e: [w0, w1] });
const m64 = (legacy: Node, long: Node): Split => ({ split: SplitKind.Mode64, e: [legacy, long] });
const osz = (o16: Node, o32: Node, o64: Node = o32): Split => ({ split: SplitKind.OpSize, e: [o16, o32, o64] });
const asz = (a16: Node, a32: Node, a64: Node): Split => ({ split: SplitKind.AddrSize, e: [a16, a32, a64] });
const vexl = (l0: Node, l1: Node): Split => ({ split: SplitKind.VexL, e: [l0, l1] });
const m16 = (real: Node, other: Node): Split => ({ split: SplitKind.Mode16, e: [real, other] });

/** An MMX op with an SSE2 twin under 66 (`name Pq,Qq` / `name Vx,Wx`). */
const mmxSse = (name: string): Split => pfxs(`${name} Pq,Qq`, `${name} Vx,Wx`);
/** An SSE op with the four prefix forms ps/pd/ss/sd. */
const sse4 = (name: string): Split =>
  pfx(`${name}ps Vps,Wps`, `${name}pd Vpd,Wpd`, `${name}ss Vss,Wss`, `${name}sd Vsd,Wsd`);
/** An SSE op with only ps/pd forms. */
const sse2 = (name: string, suffixPs = 'ps', suffixPd = 'pd'): Split =>
  pfxs(`${name}${suffixPs} Vps,Wps`, `${name}${suffixPd} Vpd,Wpd`);
/** A 66-only SSE op of the 0F38/0F3A maps. */
const p66 = (leaf: Node): Split => pfxs('', leaf);

const ALU = ['add', 'or', 'adc', 'sbb', 'and', 'sub', 'xor', 'cmp'];
const CC = ['o', 'no', 'b', 'ae', 'e', 'ne', 'be', 'a', 's', 'ns', 'p', 'np', 'l', 'ge', 'le', 'g'];

function buildOneByte(): Node[] {
  const t: Node[] = new Array<Node>(256).fill('');
  for (let i = 0; i < 8; i++) {
    const n = ALU[i]!;
    t[i * 8 + 0] = `${n} Eb,Gb`;
    t[i * 8 + 1] = `${n} Ev,Gv`;
    t[i * 8 + 2] = `${n} Gb,Eb`;
    t[i * 8 + 3] = `${n} Gv,Ev`;
    t[i * 8 + 4] = `${n} AL,Ib`;
    t[i * 8 + 5] = `${n} rAX,Iz`;
  }
  t[0x06] = 'push:i64:sxd ES'; t[0x07] = 'pop:i64:sxd ES';
  t[0x0e] = 'push:i64:sxd CS';
  t[0x16] = 'push:i64:sxd SS'; t[0x17] = 'pop:i64:sxd SS';
  t[0x1e] = 'push:i64:sxd DS'; t[0x1f] = 'pop:i64:sxd DS';
  t[0x27] = 'daa:i64'; t[0x2f] = 'das:i64'; t[0x37] = 'aaa:i64'; t[0x3f] = 'aas:i64';
  for (let i = 0; i < 8; i++) {
    t[0x40 + i] = 'inc:i64 Zv';
    t[0x48 + i] = 'dec:i64 Zv';
    t[0x50 + i] = 'push:d64 Zv';
    t[0x58 + i] = 'pop:d64 Zv';
  }
  t[0x60] = 'pusha:i64:sxd';
  t[0x61] = 'popa:i64:sxd';
  // (a register operand is #UD, and objdump prints the whole instruction as `(bad)`: a table hole, as for
  // LEA, LES/LDS and the far indirect CALL/JMP below; objdump decodes EVEX for 62 with ModRM.mod 3)
  t[0x62] = mod('bound:i64 Gv,Ma', '');
  t[0x63] = m64('arpl Ew,Gw', rexw('movsxd Gv,Ed', 'movslq Gv,Ed'));
  t[0x68] = 'push:d64 Iz';
  t[0x69] = 'imul Gv,Ev,Iz';
  t[0x6a] = 'push:d64 Ibs';
  t[0x6b] = 'imul Gv,Ev,Ibs';
  t[0x6c] = 'ins:str:sx Yb,DXp';
  t[0x6d] = 'ins:str:sx Yz,DXp';
  t[0x6e] = 'outs:str:sx DXp,Xb';
  t[0x6f] = 'outs:str:sx DXp,Xz';
  for (let i = 0; i < 16; i++) t[0x70 + i] = `j${CC[i]}:f64:br:nosx:jcc Jb`;
  t[0x80] = grp(...ALU.map((n) => `${n} Eb,Ib`));
  t[0x81] = grp(...ALU.map((n) => `${n} Ev,Iz`));
  t[0x82] = grp(...ALU.map((n) => `${n}:i64 Eb,Ib`));
  t[0x83] = grp(...ALU.map((n) => `${n} Ev,Ibs`));
  t[0x84] = 'test Eb,Gb'; t[0x85] = 'test Ev,Gv';
  t[0x86] = 'xchg Eb,Gb'; t[0x87] = 'xchg Ev,Gv';
  t[0x88] = 'mov Eb,Gb'; t[0x89] = 'mov Ev,Gv'; t[0x8a] = 'mov Gb,Eb'; t[0x8b] = 'mov Gv,Ev';
  t[0x8c] = mod('mov Ew,Sw', 'mov Ev,Sw');
  t[0x8d] = mod('lea Gv,M0', '');
  t[0x8e] = mod('mov Sw,Mw', 'mov Sw,Rv');
  t[0x8f] = grp('pop:d64 Ev', '', '', '', '', '', '', '');
  t[0x90] = 'nop';
  for (let i = 1; i < 8; i++) t[0x90 + i] = 'xchg Zv,rAX';
  t[0x98] = osz('cbtw', 'cwtl', 'cltq');
  t[0x99] = osz('cwtd', 'cltd', 'cqto');
  t[0x9a] = 'lcall:i64:sxd Ap';
  t[0x9b] = 'fwait';
  t[0x9c] = 'pushf:d64'; t[0x9d] = 'popf:d64';
  t[0x9e] = 'sahf'; t[0x9f] = 'lahf';
  t[0xa0] = 'mov AL,Ob'; t[0xa1] = 'mov rAX,Ov'; t[0xa2] = 'mov Ob,AL'; t[0xa3] = 'mov Ov,rAX';
  t[0xa4] = 'movs:str:sx Yb,Xb'; t[0xa5] = 'movs:str:sx Yv,Xv';
  t[0xa6] = 'cmps:str:sx Xb,Yb'; t[0xa7] = 'cmps:str:sx Xv,Yv';
  t[0xa8] = 'test AL,Ib'; t[0xa9] = 'test rAX,Iz';
  t[0xaa] = 'stos:str Yb,AL'; t[0xab] = 'stos:str Yv,rAX';
  t[0xac] = 'lods:str AL,Xb'; t[0xad] = 'lods:str rAX,Xv';
  t[0xae] = 'scas:str AL,Yb'; t[0xaf] = 'scas:str rAX,Yv';
  for (let i = 0; i < 8; i++) {
    t[0xb0 + i] = 'mov Zb,Ib';
    t[0xb8 + i] = 'mov Zv,Iv';
  }
  const SHIFT = ['rol', 'ror', 'rcl', 'rcr', 'shl', 'shr', 'shl', 'sar'];
  t[0xc0] = grp(...SHIFT.map((n) => `${n} Eb,Ib`));
  t[0xc1] = grp(...SHIFT.map((n) => `${n} Ev,Ib`));
  t[0xc2] = 'ret:f64:br Iw';
  t[0xc3] = 'ret:f64:br';
  t[0xc4] = mod('les:i64 Gz,Mp', '');
  t[0xc5] = mod('lds:i64 Gz,Mp', '');
  t[0xc6] = grp('mov Eb,Ib', '', '', '', '', '', '', mod('', rm('xabort Ib', '', '', '', '', '', '', '')));
  t[0xc7] = grp('mov Ev,Iz', '', '', '', '', '', '', mod('', rm('xbegin:br Jz', '', '', '', '', '', '', '')));
  t[0xc8] = 'enter:d64 Iw,Ib';
  t[0xc9] = 'leave:d64';
  t[0xca] = 'lret:sxd Iw';
  t[0xcb] = 'lret:sxd';
  t[0xcc] = 'int3';
  t[0xcd] = 'int Ib';
  t[0xce] = 'into:i64';
  t[0xcf] = 'iret:sxd';
  t[0xd0] = grp(...SHIFT.map((n) => `${n} Eb,1`));
  t[0xd1] = grp(...SHIFT.map((n) => `${n} Ev,1`));
  t[0xd2] = grp(...SHIFT.map((n) => `${n} Eb,CL`));
  t[0xd3] = grp(...SHIFT.map((n) => `${n} Ev,CL`));
  t[0xd4] = 'aam:i64 Ib';
  t[0xd5] = 'aad:i64 Ib';
  t[0xd7] = 'xlat Xb';
  t[0xe0] = 'loopne:f64:br:nosx:jcc:actr Jb';
  t[0xe1] = 'loope:f64:br:nosx:jcc:actr Jb';
  t[0xe2] = 'loop:f64:br:nosx:jcc:actr Jb';
  t[0xe3] = asz('jcxz:f64:br:nosx:jcc Jb', 'jecxz:f64:br:nosx:jcc Jb', 'jrcxz:f64:br:nosx:jcc Jb');
  t[0xe4] = 'in AL,Ib'; t[0xe5] = 'in eAX,Ib';
  t[0xe6] = 'out Ib,AL'; t[0xe7] = 'out Ib,eAX';
  t[0xe8] = 'call:f64:br Jz';
  t[0xe9] = 'jmp:f64:br Jz';
  t[0xea] = 'ljmp:i64:sxd Ap';
  t[0xeb] = 'jmp:f64:br Jb';
  t[0xec] = 'in AL,DXp'; t[0xed] = 'in eAX,DXp';
  t[0xee] = 'out DXp,AL'; t[0xef] = 'out DXp,eAX';
  t[0xf1] = 'int1';
  t[0xf4] = 'hlt';
  t[0xf5] = 'cmc';
  t[0xf6] = grp('test Eb,Ib', 'test Eb,Ib', 'not Eb', 'neg Eb', 'mul Eb', 'imul Eb', 'div Eb', 'idiv Eb');
  t[0xf7] = grp('test Ev,Iz', 'test Ev,Iz', 'not Ev', 'neg Ev', 'mul Ev', 'imul Ev', 'div Ev', 'idiv Ev');
  t[0xf8] = 'clc'; t[0xf9] = 'stc'; t[0xfa] = 'cli'; t[0xfb] = 'sti'; t[0xfc] = 'cld'; t[0xfd] = 'std';
  t[0xfe] = grp('inc Eb', 'dec Eb', '', '', '', '', '', '');
  t[0xff] = grp('inc Ev', 'dec Ev', 'call:f64:br Ev', mod('lcall:br:far Mp', ''), 'jmp:f64:br Ev', mod('ljmp:br:far Mp', ''), 'push:d64 Ev', '');
  return t;
}

function buildTwoByte(): Node[] {
  const t: Node[] = new Array<Node>(256).fill('');
  t[0x00] = grp(mod('sldt:nosx Mw', 'sldt:nosx Rv'), mod('str:nosx Mw', 'str:nosx Rv'), 'lldt:nosx Ew', 'ltr:nosx Ew', 'verr:nosx Ew', 'verw:nosx Ew', '', '');
  t[0x01] = grp(
    // (register forms selected by 66/F3/F2: MSRLIST, TDX/SEAM, SEV-SNP, CET, UINTR, TSXLDTRK; many long mode only)
    mod('sgdt:osx M0', rm('enclv', 'vmcall', 'vmlaunch', 'vmresume', 'vmxoff', 'pconfig', pfx('wrmsrns', '', m64('', 'wrmsrlist'), m64('', 'rdmsrlist')), '')),
    mod('sidt:osx M0', rm('monitor:norev aAX,ECX,EDX', 'mwait:norev EAX,ECX', 'clac', 'stac', pfx('', 'tdcall'), pfx('', m64('', 'seamret')),
      pfx('', m64('', 'seamops')), pfx('encls', m64('', 'seamcall')))),
    mod('lgdt:osx M0', rm('xgetbv', 'xsetbv', '', '', 'vmfunc', 'xend', 'xtest', 'enclu')),
    mod('lidt:osx M0', rm('vmrun', pfx('vmmcall', '', 'vmgexit', 'vmgexit'), 'vmload', 'vmsave', 'stgi', 'clgi', 'skinit', 'invlpga')),
    mod('smsw:nosx Mw', 'smsw:nosx Rv'),
    mod('', rm(pfx('serialize', '', 'setssbsy', 'xsusldtrk'), pfx('', '', '', 'xresldtrk'), pfx('', '', 'saveprevssp', ''), '',
      pfx('', '', m64('', 'uiret'), ''), pfx('', '', m64('', 'testui'), ''), pfx('rdpkru', '', m64('', 'clui'), ''),
      pfx('wrpkru', '', m64('', 'stui'), ''))),
    'lmsw:nosx Ew',
    mod('invlpg M0', rm(od('swapgs:o64', 'swapgs'), 'rdtscp', pfx('monitorx:norev aAX,ECX,EDX', '', 'mcommit', ''), pfxs('mwaitx:norev EAX,ECX,EBX'),
      'clzero', pfx('rdpru', '', m64('', 'rmpquery'), ''), pfx('invlpgb', '', m64('', 'rmpadjust'), m64('', 'rmpupdate')),
      pfx('tlbsync', '', m64('', 'psmash'), 'pvalidate'))),
  );
  t[0x02] = mod('lar Gv,Mw', 'lar Gv,Rv');
  t[0x03] = mod('lsl Gv,Mw', 'lsl Gv,Rv');
  t[0x05] = 'syscall';
  t[0x06] = 'clts';
  t[0x07] = m64('sysret', rexw('sysretl', 'sysretq'));
  t[0x08] = 'invd';
  t[0x09] = pfx('wbinvd', '', 'wbnoinvd');
  t[0x0b] = 'ud2';
  // AMD 3DNow! (gone from current CPUs): the operation is an imm8 after the operands (NOW3D_NAMES)
  t[0x0f] = od('', '3dnow:now3d Pq,Qq');
  t[0x0d] = grp('prefetch M0', 'prefetchw M0', 'prefetchwt1 M0', 'prefetch M0', 'prefetch M0', 'prefetch M0', 'prefetch M0', 'prefetch M0');
  t[0x0e] = 'femms';
  t[0x10] = pfx('movups Vps,Wps', 'movupd Vpd,Wpd', 'movss Vx,Wss', 'movsd Vx,Wsd');
  t[0x11] = pfx('movups Wps,Vps', 'movupd Wpd,Vpd', 'movss Wss,Vx', 'movsd Wsd,Vx');
  t[0x12] = pfx(mod('movlps Vq,Mq', 'movhlps Vq,Uq'), mod('movlpd Vq,Mq', ''), 'movsldup Vx,Wx', 'movddup Vx,Wq');
  t[0x13] = mod(pfxs('movlps Mq,Vq', 'movlpd Mq,Vq'), '');
  t[0x14] = sse2('unpcklp', 's', 'd');
  t[0x15] = sse2('unpckhp', 's', 'd');
  t[0x16] = pfx(mod('movhps Vq,Mq', 'movlhps Vq,Uq'), mod('movhpd Vq,Mq', ''), 'movshdup Vx,Wx');
  t[0x17] = mod(pfxs('movhps Mq,Vq', 'movhpd Mq,Vq'), '');
  // objdump: /6 /7 with a RIP-relative operand are PREFETCHIT1/0 (hint NOPs elsewhere); F2/F3 consumed in long mode
  t[0x18] = mod(grp('prefetchnta M0', 'prefetcht0 M0', 'prefetcht1 M0', 'prefetcht2 M0', 'nop Ev', 'nop Ev',
    od('nop Ev', m64('nop Ev', pfxc(rip('nop Ev', 'prefetchit1 M0'), 'nop Ev', 'nop Ev', 'nop Ev'))),
    od('nop Ev', m64('nop Ev', pfxc(rip('nop Ev', 'prefetchit0 M0'), 'nop Ev', 'nop Ev', 'nop Ev')))), 'nop Ev');
  t[0x19] = 'nop Ev';
  // MPX: hint NOPs on CPUs without it (all current ones); objdump still names the bnd* forms
  t[0x1a] = od('nop Ev', pfx(mod('bndldx:mib B,M0', 'nop Ev'), 'bndmov:mpx B,K', 'bndcl:mpx B,En', 'bndcu:mpx B,En'));
  t[0x1b] = od('nop Ev', pfx(mod('bndstx:mib M0,B', 'nop Ev'), 'bndmov:mpx K,B', mod('bndmk:mib B,M0', 'nop:kp Ev'), 'bndcn:mpx B,En'));
  const nop1c = mod(grp('cldemote M0', 'nop Ev', 'nop Ev', 'nop Ev', 'nop Ev', 'nop Ev', 'nop Ev', 'nop Ev'), 'nop Ev');
  // (objdump: one prefix table over the slot; a 66 is consumed, an F3/F2 is not)
  t[0x1c] = od(mod(grp(pfxk(0b1110, 'cldemote M0', 'nop Ev', 'nop Ev', 'nop Ev'), 'nop Ev', 'nop Ev', 'nop Ev', 'nop Ev', 'nop Ev',
    'nop Ev', 'nop Ev'), 'nop Ev'), pfxk(0b1100, nop1c, 'nop Ev', 'nop Ev', 'nop Ev'));
  t[0x1d] = 'nop Ev';
  t[0x1e] = pfx('nop Ev', 'nop Ev', mod('nop:kp Ev', grp('nop:kp Ev', rexw('rdsspd Rd', 'rdsspq Rq'), 'nop:kp Ev', 'nop:kp Ev', 'nop:kp Ev',
    'nop:kp Ev', 'nop:kp Ev', rm('nop:kp Ev', 'nop:kp Ev', 'endbr64', 'endbr32', 'nop:kp Ev', 'nop:kp Ev', 'nop:kp Ev', 'nop:kp Ev'))), 'nop Ev');
  t[0x1f] = 'nop Ev';
  t[0x20] = 'mov Rn,Cn';
  t[0x21] = 'mov Rn,Dn';
  t[0x22] = 'mov Cn,Rn';
  t[0x23] = 'mov Dn,Rn';
  // 386/486 test registers (#UD since the Pentium)
  t[0x24] = od('', m64('mov Rd,Td', ''));
  t[0x26] = od('', m64('mov Td,Rd', ''));
  t[0x28] = sse2('movap', 's', 'd');
  t[0x29] = pfxs('movaps Wps,Vps', 'movapd Wpd,Vpd');
  t[0x2a] = pfx('cvtpi2ps Vps,Qpi', 'cvtpi2pd Vpd,Qpi', m64('cvtsi2ss Vss,Ey', 'cvtsi2ss:sxm Vss,Ey'), m64('cvtsi2sd Vsd,Ey', 'cvtsi2sd:sxm Vsd,Ey'));
  // movntss/movntsd: AMD SSE4a
  t[0x2b] = pfx(mod('movntps Mps,Vps', ''), mod('movntpd Mpd,Vpd', ''), mod('movntss Md,Vss', ''), mod('movntsd Mq,Vsd', ''));
  t[0x2c] = pfx('cvttps2pi Ppi,Wq', 'cvttpd2pi Ppi,Wpd', 'cvttss2si Gy,Wss', 'cvttsd2si Gy,Wsd');
  t[0x2d] = pfx('cvtps2pi Ppi,Wq', 'cvtpd2pi Ppi,Wpd', 'cvtss2si Gy,Wss', 'cvtsd2si Gy,Wsd');
  t[0x2e] = pfx('ucomiss Vss,Wss', 'ucomisd Vsd,Wsd');
  t[0x2f] = pfx('comiss Vss,Wss', 'comisd Vsd,Wsd');
  t[0x30] = 'wrmsr';
  t[0x31] = 'rdtsc';
  t[0x32] = 'rdmsr';
  t[0x33] = 'rdpmc';
  t[0x34] = 'sysenter';
  t[0x35] = m64('sysexit', rexw('sysexitl', 'sysexitq'));
  t[0x37] = 'getsec';
  for (let i = 0; i < 16; i++) t[0x40 + i] = `cmov${CC[i]} Gv,Ev`;
  t[0x50] = mod('', pfxs('movmskps Gy,Ups', 'movmskpd Gy,Upd'));
  t[0x51] = sse4('sqrt');
  t[0x52] = pfx('rsqrtps Vps,Wps', '', 'rsqrtss Vss,Wss');
  t[0x53] = pfx('rcpps Vps,Wps', '', 'rcpss Vss,Wss');
  t[0x54] = sse2('and');
  t[0x55] = sse2('andn');
  t[0x56] = sse2('or');
  t[0x57] = sse2('xor');
  t[0x58] = sse4('add');
  t[0x59] = sse4('mul');
  t[0x5a] = pfx('cvtps2pd Vpd,Wq', 'cvtpd2ps Vps,Wpd', 'cvtss2sd Vsd,Wss', 'cvtsd2ss Vss,Wsd');
  t[0x5b] = pfx('cvtdq2ps Vps,Wx', 'cvtps2dq Vx,Wps', 'cvttps2dq Vx,Wps');
  t[0x5c] = sse4('sub');
  t[0x5d] = sse4('min');
  t[0x5e] = sse4('div');
  t[0x5f] = sse4('max');
  const M60 = ['punpcklbw', 'punpcklwd', 'punpckldq', 'packsswb', 'pcmpgtb', 'pcmpgtw', 'pcmpgtd', 'packuswb',
    'punpckhbw', 'punpckhwd', 'punpckhdq', 'packssdw'];
  for (let i = 0; i < M60.length; i++) t[0x60 + i] = mmxSse(M60[i]!);
  for (let i = 0; i < 3; i++) t[0x60 + i] = pfx(`${M60[i]!} Pq,Qq`, `${M60[i]!} Vx,Wx`); // objdump: a prefix table
  t[0x6c] = pfxs('', 'punpcklqdq Vx,Wx');
  t[0x6d] = pfxs('', 'punpckhqdq Vx,Wx');
  t[0x6e] = pfxs(rexw('movd Pq,Ed', 'movq Pq,Eq'), rexw('movd Vx,Ed', 'movq Vx,Eq'));
  t[0x6f] = pfx('movq Pq,Qq', 'movdqa Vx,Wx', 'movdqu Vx,Wx');
  t[0x70] = pfx('pshufw Pq,Qq,Ib', 'pshufd Vx,Wx,Ib', 'pshufhw Vx,Wx,Ib', 'pshuflw Vx,Wx,Ib');
  const shiftImm = (a: string, b: string, c: string, d: string, e66 = '', f66 = ''): Split => mod('', grp('', '',
    pfxs(a ? `${a} Nq,Ib` : '', a ? `${a} Ux,Ib` : ''), e66 ? pfxs('', `${e66} Ux,Ib`) : '',
    b ? pfxs(`${b} Nq,Ib`, `${b} Ux,Ib`) : '', '',
    pfxs(c ? `${c} Nq,Ib` : '', c ? `${c} Ux,Ib` : ''), f66 ? pfxs('', `${f66} Ux,Ib`) : (d ? pfxs(`${d} Nq,Ib`) : '')));
  t[0x71] = shiftImm('psrlw', 'psraw', 'psllw', '');
  t[0x72] = shiftImm('psrld', 'psrad', 'pslld', '');
  t[0x73] = shiftImm('psrlq', '', 'psllq', '', 'psrldq', 'pslldq');
  t[0x74] = mmxSse('pcmpeqb');
  t[0x75] = mmxSse('pcmpeqw');
  t[0x76] = mmxSse('pcmpeqd');
  t[0x77] = pfxs('emms');
  // SSE4a: the register forms only (objdump shows a memory form as a `(bad)` operand)
  t[0x78] = pfx(m64('vmread Ed,Gd', 'vmread Eq,Gq'), mod('extrq Ux,Ib,Ib', od(grp('extrq Ux,Ib,Ib', '', '', '', '', '', '', ''), 'extrq Ux,Ib,Ib')), '', 'insertq Vx,Ux,Ib,Ib');
  t[0x79] = pfx(m64('vmwrite Gd,Ed', 'vmwrite Gq,Eq'), 'extrq Vx,Ux', '', 'insertq Vx,Ux');
  t[0x7c] = pfx('', 'haddpd Vpd,Wpd', '', 'haddps Vps,Wps');
  t[0x7d] = pfx('', 'hsubpd Vpd,Wpd', '', 'hsubps Vps,Wps');
  t[0x7e] = pfx(rexw('movd Ed,Pq', 'movq Eq,Pq'), rexw('movd Ed,Vx', 'movq Eq,Vx'), 'movq Vx,Wq');
  t[0x7f] = pfx('movq Qq,Pq', 'movdqa Wx,Vx', 'movdqu Wx,Vx');
  for (let i = 0; i < 16; i++) t[0x80 + i] = `j${CC[i]}:f64:br:nosx:jcc Jz`;
  for (let i = 0; i < 16; i++) t[0x90 + i] = `set${CC[i]}:nosx Eb`;
  t[0xa0] = 'push:d64 FS';
  t[0xa1] = 'pop:d64 FS';
  t[0xa2] = 'cpuid';
  // VIA PadLock (#UD elsewhere)
  t[0xa6] = od('', grp('montmul:rm0', 'xsha1:rm0', 'xsha256:rm0', '', '', '', '', ''));
  t[0xa7] = od('', grp('xstore-rng:rm0', 'xcrypt-ecb:rm0', 'xcrypt-cbc:rm0', 'xcrypt-ctr:rm0', 'xcrypt-cfb:rm0', 'xcrypt-ofb:rm0', '', ''));
  t[0xa3] = 'bt Ev,Gv';
  t[0xa4] = 'shld Ev,Gv,Ib';
  t[0xa5] = 'shld Ev,Gv,CL';
  t[0xa8] = 'push:d64 GS';
  t[0xa9] = 'pop:d64 GS';
  t[0xaa] = 'rsm';
  t[0xab] = 'bts Ev,Gv';
  t[0xac] = 'shrd Ev,Gv,Ib';
  t[0xad] = 'shrd Ev,Gv,CL';
  // objdump: memory forms by ModRM.reg first (prefixes stay printed), register forms by prefix
  t[0xae] = mod(
    grp(rexw('fxsave M0', 'fxsave64 M0'), rexw('fxrstor M0', 'fxrstor64 M0'), 'ldmxcsr Md', 'stmxcsr Md',
      pfx(rexw('xsave M0', 'xsave64 M0'), '', m64('ptwrite:nosx Ey', 'ptwrite Ey')), pfxs(rexw('xrstor M0', 'xrstor64 M0')),
      pfx(rexw('xsaveopt M0', 'xsaveopt64 M0'), 'clwb M0', 'clrssbsy Mq'), pfx('clflush M0', 'clflushopt M0')),
    // (objdump decodes the FSGSBASE forms in every mode, with a 66 giving a 16-bit register)
    grp(pfx('', '', od('rdfsbase:o64 Ry', 'rdfsbase Rv')), pfx('', '', od('rdgsbase:o64 Ry', 'rdgsbase Rv')),
      pfx('', '', od('wrfsbase:o64 Ry', 'wrfsbase Rv')), pfx('', '', od('wrgsbase:o64 Ry', 'wrgsbase Rv')),
      pfx('', '', 'ptwrite Ey'), pfx('lfence', '', rexw('incsspd Rd', 'incsspq Rq')),
      pfx(od('mfence', rm('mfence', '', '', '', '', '', '', '')), 'tpause Ry', 'umonitor Ras', 'umwait Ry'),
      od('sfence', rm('sfence', '', '', '', '', '', '', ''))));
  t[0xaf] = 'imul Gv,Ev';
  t[0xb0] = 'cmpxchg Eb,Gb';
  t[0xb1] = 'cmpxchg Ev,Gv';
  t[0xb2] = mod('lss Gv,Mp', '');
  t[0xb3] = 'btr Ev,Gv';
  t[0xb4] = mod('lfs Gv,Mp', '');
  t[0xb5] = mod('lgs Gv,Mp', '');
  t[0xb6] = 'movzb:sx Gv,Eb';
  t[0xb7] = 'movzw:sx Gv,Ew';
  t[0xb8] = pfx('', '', 'popcnt Gv,Ev');
  t[0xb9] = 'ud1 Gv,Ev';
  t[0xba] = grp('', '', '', '', 'bt Ev,Ib', 'bts Ev,Ib', 'btr Ev,Ib', 'btc Ev,Ib');
  t[0xbb] = 'btc Ev,Gv';
  t[0xbc] = pfx('bsf Gv,Ev', 'bsf Gv,Ev', 'tzcnt Gv,Ev', od('bsf Gv,Ev', ''));
  t[0xbd] = pfx('bsr Gv,Ev', 'bsr Gv,Ev', 'lzcnt Gv,Ev', od('bsr Gv,Ev', ''));
  t[0xbe] = 'movsb:sx Gv,Eb';
  t[0xbf] = 'movsw:sx Gv,Ew';
  t[0xc0] = 'xadd Eb,Gb';
  t[0xc1] = 'xadd Ev,Gv';
  t[0xc2] = pfx('cmpps Vps,Wps,Ib', 'cmppd Vpd,Wpd,Ib', 'cmpss Vss,Wss,Ib', 'cmpsd Vsd,Wsd,Ib');
  t[0xc3] = mod(pfxs('movnti My,Gy'), '');
  t[0xc4] = pfxs('pinsrw Pq,Ed,Ib', 'pinsrw Vx,Ed,Ib');
  t[0xc5] = pfxs('pextrw Gd,Nq,Ib', mod('!', 'pextrw Gd,Ux,Ib'));
  t[0xc6] = pfxs('shufps Vps,Wps,Ib', 'shufpd Vpd,Wpd,Ib');
  // objdump: memory forms by ModRM.reg (prefixes stay printed except for the VMX ones), register forms by prefix
  t[0xc7] = mod(
    grp('', rexw('cmpxchg8b Mq', 'cmpxchg16b Mdq'), '', rexw('xrstors M0', 'xrstors64 M0'), rexw('xsavec M0', 'xsavec64 M0'),
      rexw('xsaves M0', 'xsaves64 M0'), pfx('vmptrld Mq', 'vmclear Mq', 'vmxon Mq'), 'vmptrst Mq'),
    // (objdump: a register cmpxchg8b is a `(bad)` operand)
    grp('', od('', rexw('cmpxchg8b Mq', 'cmpxchg16b Mdq')), '', '', '', '', pfx('rdrand Rv', 'rdrand Rv', m64('', 'senduipi Rq')),
      pfx('rdseed Rv', 'rdseed Rv', m64('rdpid Rd', 'rdpid Rq'))));
  for (let i = 0; i < 8; i++) t[0xc8 + i] = 'bswap Zv';
  t[0xd0] = pfx('', 'addsubpd Vpd,Wpd', '', 'addsubps Vps,Wps');
  const MD0 = ['', 'psrlw', 'psrld', 'psrlq', 'paddq', 'pmullw', '', '',
    'psubusb', 'psubusw', 'pminub', 'pand', 'paddusb', 'paddusw', 'pmaxub', 'pandn',
    'pavgb', 'psraw', 'psrad', 'pavgw', 'pmulhuw', 'pmulhw', '', '',
    'psubsb', 'psubsw', 'pminsw', 'por', 'paddsb', 'paddsw', 'pmaxsw', 'pxor',
    '', 'psllw', 'pslld', 'psllq', 'pmuludq', 'pmaddwd', 'psadbw', '',
    'psubb', 'psubw', 'psubd', 'psubq', 'paddb', 'paddw', 'paddd', ''];
  for (let i = 0; i < MD0.length; i++) if (MD0[i]) t[0xd0 + i] = mmxSse(MD0[i]!);
  t[0xd6] = pfx('', 'movq Wq,Vx', 'movq2dq Vx,Nq', 'movdq2q Pq,Ux');
  // (objdump: with F3/F2 and 66 both present the 66 form is taken, the REP prefix staying named)
  const pmovRep = od('pmovmskb Gy,Nq', m16(osz('pmovmskb Gy,Nq', 'pmovmskb Gy,Ux', 'pmovmskb Gy,Nq'),
    osz('pmovmskb Gy,Ux', 'pmovmskb Gy,Nq', 'pmovmskb Gy,Nq')));
  t[0xd7] = mod('', pfxk(0b1100, 'pmovmskb Gy,Nq', 'pmovmskb Gy,Ux', pmovRep, pmovRep));
  t[0xe6] = pfx('', 'cvttpd2dq Vx,Wpd', 'cvtdq2pd Vx,Wq', 'cvtpd2dq Vx,Wpd');
  t[0xe7] = pfx('movntq Mq,Pq', mod('movntdq Mx,Vx', ''));
  t[0xf0] = pfx('', '', '', mod('lddqu Vx,Mx', ''));
  t[0xf7] = pfx('maskmovq Pq,Nq', 'maskmovdqu Vx,Ux');
  t[0xff] = 'ud0 Gv,Ev';
  return t;
}

function buildThreeByte38(): Node[] {
  const t: Node[] = new Array<Node>(256).fill('');
  const ssse3 = ['pshufb', 'phaddw', 'phaddd', 'phaddsw', 'pmaddubsw', 'phsubw', 'phsubd', 'phsubsw',
    'psignb', 'psignw', 'psignd', 'pmulhrsw'];
  for (let i = 0; i < ssse3.length; i++) t[i] = mmxSse(ssse3[i]!);
  t[0x1c] = mmxSse('pabsb');
  t[0x1d] = mmxSse('pabsw');
  t[0x1e] = mmxSse('pabsd');
  t[0x10] = p66('pblendvb Vx,Wx,XMM0');
  t[0x14] = p66('blendvps Vx,Wx,XMM0');
  t[0x15] = p66('blendvpd Vx,Wx,XMM0');
  t[0x17] = p66('ptest Vx,Wx');
  const pmov = ['bw Wq', 'bd Wd', 'bq Ww', 'wd Wq', 'wq Wd', 'dq Wq'];
  for (let i = 0; i < 6; i++) {
    const [suf, src] = pmov[i]!.split(' ') as [string, string];
    t[0x20 + i] = p66(`pmovsx${suf} Vx,${src}`);
    t[0x30 + i] = p66(`pmovzx${suf} Vx,${src}`);
  }
  t[0x28] = p66('pmuldq Vx,Wx');
  t[0x29] = p66('pcmpeqq Vx,Wx');
  t[0x2a] = p66(mod('movntdqa Vx,Mx', ''));
  t[0x2b] = p66('packusdw Vx,Wx');
  t[0x37] = p66('pcmpgtq Vx,Wx');
  const mm = ['pminsb', 'pminsd', 'pminuw', 'pminud', 'pmaxsb', 'pmaxsd', 'pmaxuw', 'pmaxud', 'pmulld', 'phminposuw'];
  for (let i = 0; i < mm.length; i++) t[0x38 + i] = p66(`${mm[i]} Vx,Wx`);
  t[0x80] = pfxs('', m64('invept Gd,Mdq', 'invept Gq,Mdq'));
  t[0x81] = pfxs('', m64('invvpid Gd,Mdq', 'invvpid Gq,Mdq'));
  t[0x82] = pfxs('', m64('invpcid Gd,Mdq', 'invpcid Gq,Mdq'));
  t[0xc8] = pfxs('sha1nexte Vx,Wx');
  t[0xc9] = pfxs('sha1msg1 Vx,Wx');
  t[0xca] = pfxs('sha1msg2 Vx,Wx');
  t[0xcb] = pfxs('sha256rnds2 Vx,Wx,XMM0');
  t[0xcc] = pfxs('sha256msg1 Vx,Wx');
  t[0xcd] = pfxs('sha256msg2 Vx,Wx');
  // Key Locker (F3 forms)
  t[0xd8] = pfx('', '', grp('aesencwide128kl M0', 'aesdecwide128kl M0', 'aesencwide256kl M0', 'aesdecwide256kl M0', '', '', '', ''));
  t[0xcf] = p66('gf2p8mulb Vx,Wx');
  t[0xdb] = p66('aesimc Vx,Wx');
  t[0xdc] = pfx('', 'aesenc Vx,Wx', mod('aesenc128kl Vx,M0', 'loadiwkey Vx,Ux'));
  t[0xdd] = pfx('', 'aesenclast Vx,Wx', mod('aesdec128kl Vx,M0', ''));
  t[0xde] = pfx('', 'aesdec Vx,Wx', mod('aesenc256kl Vx,M0', ''));
  t[0xdf] = pfx('', 'aesdeclast Vx,Wx', mod('aesdec256kl Vx,M0', ''));
  t[0xf0] = pfx('movbe Gv,Mv', 'movbe Gv,Mv', '', 'crc32:sxm Gy,Eb');
  t[0xf1] = pfx('movbe Mv,Gv', 'movbe Mv,Gv', '', 'crc32:sxm Gy,Ev');
  // CET shadow-stack writes
  t[0xf5] = mod(pfxs('', rexw('wrussd Md,Gd', 'wrussq Mq,Gq')), '');
  t[0xf6] = pfx(mod(rexw('wrssd Md,Gd', 'wrssq Mq,Gq'), ''), 'adcx Gy,Ey', 'adox Gy,Ey');
  t[0xf8] = pfx('', mod('movdir64b Gas,M0', ''), mod('enqcmds Gas,M0', ''), mod('enqcmd Gas,M0', ''));
  t[0xf9] = mod(pfxs('movdiri My,Gy'), '');
  t[0xfa] = pfx('', '', mod('', 'encodekey128 Gd,Rd'));
  t[0xfb] = pfx('', '', mod('', 'encodekey256 Gd,Rd'));
  t[0xfc] = pfx('aadd My,Gy', 'aand My,Gy', 'axor My,Gy', 'aor My,Gy');
  return t;
}

function buildThreeByte3A(): Node[] {
  const t: Node[] = new Array<Node>(256).fill('');
  t[0x08] = p66('roundps Vx,Wx,Ib');
  t[0x09] = p66('roundpd Vx,Wx,Ib');
  t[0x0a] = p66('roundss Vx,Wss,Ib');
  t[0x0b] = p66('roundsd Vx,Wsd,Ib');
  t[0x0c] = p66('blendps Vx,Wx,Ib');
  t[0x0d] = p66('blendpd Vx,Wx,Ib');
  t[0x0e] = p66('pblendw Vx,Wx,Ib');
  t[0x0f] = pfxs('palignr Pq,Qq,Ib', 'palignr Vx,Wx,Ib');
  t[0x14] = p66('pextrb Ebd,Vx,Ib');
  t[0x15] = p66('pextrw Ewd,Vx,Ib');
  // (W is ignored outside long mode: VEX.W1 in 32-bit code)
  t[0x16] = p66(rexw('pextrd Ed,Vx,Ib', m64('pextrd Ed,Vx,Ib', 'pextrq Eq,Vx,Ib')));
  t[0x17] = p66('extractps Ed,Vx,Ib');
  t[0x20] = p66('pinsrb Vx,Ebd,Ib');
  t[0x21] = p66('insertps Vx,Wd,Ib');
  t[0x22] = p66(rexw('pinsrd Vx,Ed,Ib', m64('pinsrd Vx,Ed,Ib', 'pinsrq Vx,Eq,Ib')));
  t[0x40] = p66('dpps Vx,Wx,Ib');
  t[0x41] = p66('dppd Vx,Wx,Ib');
  t[0x42] = p66('mpsadbw Vx,Wx,Ib');
  t[0x44] = p66('pclmulqdq Vx,Wx,Ib');
  // (REX.W/VEX.W selects 64-bit rAX/rDX lengths: objdump adds a q)
  t[0x60] = p66(rexw('pcmpestrm Vx,Wx,Ib', m64('pcmpestrm Vx,Wx,Ib', 'pcmpestrmq Vx,Wx,Ib')));
  t[0x61] = p66(rexw('pcmpestri Vx,Wx,Ib', m64('pcmpestri Vx,Wx,Ib', 'pcmpestriq Vx,Wx,Ib')));
  t[0x62] = p66('pcmpistrm Vx,Wx,Ib');
  t[0x63] = p66('pcmpistri Vx,Wx,Ib');
  t[0xcc] = pfxs('sha1rnds4 Vx,Wx,Ib');
  t[0xce] = p66('gf2p8affineqb Vx,Wx,Ib');
  t[0xcf] = p66('gf2p8affineinvqb Vx,Wx,Ib');
  t[0xdf] = p66('aeskeygenassist Vx,Wx,Ib');
  // (hreset: ModRM must be 11 000 000)
  t[0xf0] = pfx('', '', mod('', grp(rm('hreset Ib', '', '', '', '', '', '', ''), '', '', '', '', '', '', '')), '');
  return t;
}

/** x87 memory forms: index (opcode-0xD8)*8 + ModRM.reg. Names carry the AT&T size letter. */
export const X87_MEM: readonly string[] = [
  'fadds Md', 'fmuls Md', 'fcoms Md', 'fcomps Md', 'fsubs Md', 'fsubrs Md', 'fdivs Md', 'fdivrs Md',
  'flds Md', '(bad):bad M0', 'fsts Md', 'fstps Md', 'fldenv:x87e M0', 'fldcw Mw', 'fnstenv:x87e M0', 'fnstcw Mw',
  'fiaddl Md', 'fimull Md', 'ficoml Md', 'ficompl Md', 'fisubl Md', 'fisubrl Md', 'fidivl Md', 'fidivrl Md',
  'fildl Md', 'fisttpl Md', 'fistl Md', 'fistpl Md', '(bad):bad M0', 'fldt Mt', '(bad):bad M0', 'fstpt Mt',
  'faddl Mq', 'fmull Mq', 'fcoml Mq', 'fcompl Mq', 'fsubl Mq', 'fsubrl Mq', 'fdivl Mq', 'fdivrl Mq',
  'fldl Mq', 'fisttpll Mq', 'fstl Mq', 'fstpl Mq', 'frstor:x87e M0', '(bad):bad M0', 'fnsave:x87e M0', 'fnstsw Mw',
  'fiadds Mw', 'fimuls Mw', 'ficoms Mw', 'ficomps Mw', 'fisubs Mw', 'fisubrs Mw', 'fidivs Mw', 'fidivrs Mw',
  'filds Mw', 'fisttps Mw', 'fists Mw', 'fistps Mw', 'fbld Mt', 'fildll Mq', 'fbstp Mt', 'fistpll Mq',
];

/**
 * x87 register forms (ModRM.mod == 3): index (opcode-0xD8)*8 + ModRM.reg; a split by r/m where needed.
 * Eight reserved slots are aliases a CPU executes (D9 D8+i FSTP, DC D0+i FCOM, DC D8+i FCOMP, DD C8+i FXCH,
 * DE D0+i FCOMP, DF C8+i FXCH, DF D0+i and D8+i FSTP: the undocumented "FSTP1", "FCOM2"... of the opcode
 * maps); objdump shows them as `(bad)`. The other holes are #UD.
 */
export const X87_REG: readonly Node[] = [
  // D8
  'fadd ST,STi', 'fmul ST,STi', 'fcom STi', 'fcomp STi', 'fsub ST,STi', 'fsubr ST,STi', 'fdiv ST,STi', 'fdivr ST,STi',
  // D9
  'fld STi', 'fxch STi', rm('fnop', '', '', '', '', '', '', ''), od('fstp STi', ''),
  rm('fchs', 'fabs', '', '', 'ftst', 'fxam', '', ''),
  rm('fld1', 'fldl2t', 'fldl2e', 'fldpi', 'fldlg2', 'fldln2', 'fldz', ''),
  rm('f2xm1', 'fyl2x', 'fptan', 'fpatan', 'fxtract', 'fprem1', 'fdecstp', 'fincstp'),
  rm('fprem', 'fyl2xp1', 'fsqrt', 'fsincos', 'frndint', 'fscale', 'fsin', 'fcos'),
  // DA
  'fcmovb ST,STi', 'fcmove ST,STi', 'fcmovbe ST,STi', 'fcmovu ST,STi', '', rm('', 'fucompp', '', '', '', '', '', ''), '', '',
  // DB
  'fcmovnb ST,STi', 'fcmovne ST,STi', 'fcmovnbe ST,STi', 'fcmovnu ST,STi',
  rm('fneni(8087_only)', 'fndisi(8087_only)', 'fnclex', 'fninit', 'fnsetpm(287_only)', od('', 'frstpm(287_only)'), '', ''),
  'fucomi ST,STi', 'fcomi ST,STi', '',
  // DC
  'fadd STi,ST', 'fmul STi,ST', od('fcom STi', ''), od('fcomp STi', ''), 'fsubr STi,ST', 'fsub STi,ST', 'fdivr STi,ST', 'fdiv STi,ST',
  // DD
  'ffree STi', od('fxch STi', ''), 'fst STi', 'fstp STi', 'fucom STi', 'fucomp STi', '', '',
  // DE
  'faddp STi,ST', 'fmulp STi,ST', od('fcomp STi', ''), rm('', 'fcompp', '', '', '', '', '', ''), 'fsubrp STi,ST', 'fsubp STi,ST', 'fdivrp STi,ST', 'fdivp STi,ST',
  // DF
  'ffreep STi', od('fxch STi', ''), od('fstp STi', ''), od('fstp STi', ''), rm('fnstsw AX', '', '', '', '', '', '', ''), 'fucomip ST,STi', 'fcomip ST,STi', '',
];

/** AMD 3DNow! operations by the imm8 that follows `0F 0F /r` (AMD 3DNow! Technology Manual). */
export const NOW3D_NAMES: readonly string[] = (() => {
  const t = new Array<string>(256).fill('');
  const names: [number, string][] = [[0x0c, 'pi2fw'], [0x0d, 'pi2fd'], [0x1c, 'pf2iw'], [0x1d, 'pf2id'], [0x8a, 'pfnacc'],
    [0x8e, 'pfpnacc'], [0x90, 'pfcmpge'], [0x94, 'pfmin'], [0x96, 'pfrcp'], [0x97, 'pfrsqrt'], [0x9a, 'pfsub'], [0x9e, 'pfadd'],
    [0xa0, 'pfcmpgt'], [0xa4, 'pfmax'], [0xa6, 'pfrcpit1'], [0xa7, 'pfrsqit1'], [0xaa, 'pfsubr'], [0xae, 'pfacc'],
    [0xb0, 'pfcmpeq'], [0xb4, 'pfmul'], [0xb6, 'pfrcpit2'], [0xb7, 'pmulhrw'], [0xbb, 'pswapd'], [0xbf, 'pavgusb']];
  for (const [i, n] of names) t[i] = n;
  return t;
})();

export const ONE_BYTE_MAP: readonly Node[] = buildOneByte();
export const TWO_BYTE_MAP: readonly Node[] = buildTwoByte();
export const MAP_0F38: readonly Node[] = buildThreeByte38();
export const MAP_0F3A: readonly Node[] = buildThreeByte3A();

/** Helpers exported for the VEX table module. */
export const tableHelpers = { grp, mod, rm, pfx, pfxs, pfxk, pfxc, rip, od, rexw, m64, osz, asz, vexl, m16 };
