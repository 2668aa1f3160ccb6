/**
 * The real CPU as an oracle for alu.ts: generate a small C program whose functions run one x86
 * instruction (inline asm) on given operands and capture RFLAGS, compile it with gcc into a temp
 * directory at test time, and feed it cases on stdin. Nothing compiled is kept.
 *
 * Protocol (one line per case, hex): `op size a b c flagsIn` -> `r1 r2 flagsOut`.
 * Meaning of a, b, c, r1, r2 per kind is listed in HOST_OPS.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

type Kind =
  | 'binary' // r1 = a OP b                      (OP src=b, dst=a)
  | 'unary' // r1 = OP a
  | 'shift' // r1 = a OP (count b, in CL)
  | 'mul1' // one-operand MUL/IMUL: a = accumulator, b = source; r1 = low half, r2 = high half
  | 'div' // a = low half of dividend, c = high half, b = divisor; r1 = quotient, r2 = remainder
  | 'scan' // r1 = OP(source a) with the destination preloaded with b
  | 'cmpxchg' // a = accumulator, b = destination, c = source; r1 = new dest, r2 = new accumulator
  | 'xadd'; // a = destination, b = source; r1 = new dest, r2 = new source

export interface HostOp { readonly mnemonic: string; readonly kind: Kind; readonly sizes: readonly number[] }

const ALL = [1, 2, 4, 8] as const;
const NO8 = [2, 4, 8] as const;

/** Operations the oracle can run, by name. */
export const HOST_OPS: Record<string, HostOp> = {
  add: { mnemonic: 'add', kind: 'binary', sizes: ALL },
  adc: { mnemonic: 'adc', kind: 'binary', sizes: ALL },
  sub: { mnemonic: 'sub', kind: 'binary', sizes: ALL },
  sbb: { mnemonic: 'sbb', kind: 'binary', sizes: ALL },
  cmp: { mnemonic: 'cmp', kind: 'binary', sizes: ALL },
  and: { mnemonic: 'and', kind: 'binary', sizes: ALL },
  or: { mnemonic: 'or', kind: 'binary', sizes: ALL },
  xor: { mnemonic: 'xor', kind: 'binary', sizes: ALL },
  test: { mnemonic: 'test', kind: 'binary', sizes: ALL },
  neg: { mnemonic: 'neg', kind: 'unary', sizes: ALL },
  not: { mnemonic: 'not', kind: 'unary', sizes: ALL },
  inc: { mnemonic: 'inc', kind: 'unary', sizes: ALL },
  dec: { mnemonic: 'dec', kind: 'unary', sizes: ALL },
  bswap: { mnemonic: 'bswap', kind: 'unary', sizes: [4, 8] },
  shl: { mnemonic: 'shl', kind: 'shift', sizes: ALL },
  shr: { mnemonic: 'shr', kind: 'shift', sizes: ALL },
  sar: { mnemonic: 'sar', kind: 'shift', sizes: ALL },
  rol: { mnemonic: 'rol', kind: 'shift', sizes: ALL },
  ror: { mnemonic: 'ror', kind: 'shift', sizes: ALL },
  rcl: { mnemonic: 'rcl', kind: 'shift', sizes: ALL },
  rcr: { mnemonic: 'rcr', kind: 'shift', sizes: ALL },
  bt: { mnemonic: 'bt', kind: 'binary', sizes: NO8 },
  bts: { mnemonic: 'bts', kind: 'binary', sizes: NO8 },
  btr: { mnemonic: 'btr', kind: 'binary', sizes: NO8 },
  btc: { mnemonic: 'btc', kind: 'binary', sizes: NO8 },
  imul2: { mnemonic: 'imul', kind: 'binary', sizes: NO8 },
  mul: { mnemonic: 'mul', kind: 'mul1', sizes: ALL },
  imul: { mnemonic: 'imul', kind: 'mul1', sizes: ALL },
  div: { mnemonic: 'div', kind: 'div', sizes: ALL },
  idiv: { mnemonic: 'idiv', kind: 'div', sizes: ALL },
  bsf: { mnemonic: 'bsf', kind: 'scan', sizes: NO8 },
  bsr: { mnemonic: 'bsr', kind: 'scan', sizes: NO8 },
  tzcnt: { mnemonic: 'tzcnt', kind: 'scan', sizes: NO8 },
  lzcnt: { mnemonic: 'lzcnt', kind: 'scan', sizes: NO8 },
  popcnt: { mnemonic: 'popcnt', kind: 'scan', sizes: NO8 },
  cmpxchg: { mnemonic: 'cmpxchg', kind: 'cmpxchg', sizes: ALL },
  xadd: { mnemonic: 'xadd', kind: 'xadd', sizes: ALL },
};

const CTYPE: Record<number, string> = { 1: 'uint8_t', 2: 'uint16_t', 4: 'uint32_t', 8: 'uint64_t' };
const MOD: Record<number, string> = { 1: 'b', 2: 'w', 4: 'k', 8: 'q' };

const PRE = '"pushq %[fin]\\n\\tpopfq\\n\\t"';
const POST = '"\\n\\tpushfq\\n\\tpopq %[fl]"';

function body(op: HostOp, size: number): string {
  const T = CTYPE[size]!, m = MOD[size]!, reg = size === 1 ? 'q' : 'r';
  const asm = (insn: string, outs: string, ins: string): string =>
    `__asm__ volatile(${PRE} "${insn}" ${POST} : ${outs} : ${ins}, [fin]"r"(fin) : "cc", "memory");`;
  switch (op.kind) {
    case 'binary':
      return `${T} x = a, y = b; ${asm(`${op.mnemonic} %${m}[y], %${m}[x]`, `[x]"+${reg}"(x), [fl]"=&r"(fl)`, `[y]"${reg}"(y)`)} *r1 = x;`;
    case 'unary':
      return `${T} x = a; ${asm(`${op.mnemonic} %${m}[x]`, `[x]"+${reg}"(x), [fl]"=&r"(fl)`, `"r"(0)`)} *r1 = x;`;
    case 'shift':
      return `${T} x = a; uint8_t n = b; ${asm(`${op.mnemonic} %%cl, %${m}[x]`, `[x]"+${reg}"(x), [fl]"=&r"(fl)`, `[n]"c"(n)`)} *r1 = x;`;
    case 'mul1':
      if (size === 1) {
        return `uint16_t ax = a & 0xff; uint8_t y = b; ${asm(`${op.mnemonic}b %[y]`, `"+a"(ax), [fl]"=&r"(fl)`, `[y]"q"(y)`)} *r1 = ax & 0xff; *r2 = ax >> 8;`;
      }
      return `${T} ax = a, dx = 0, y = b; ${asm(`${op.mnemonic} %${m}[y]`, `"+a"(ax), "=&d"(dx), [fl]"=&r"(fl)`, `[y]"r"(y)`)} *r1 = ax; *r2 = dx;`;
    case 'div':
      if (size === 1) {
        return `uint16_t ax = ((c & 0xff) << 8) | (a & 0xff); uint8_t y = b; ${asm(`${op.mnemonic}b %[y]`, `"+a"(ax), [fl]"=&r"(fl)`, `[y]"q"(y)`)} *r1 = ax & 0xff; *r2 = ax >> 8;`;
      }
      return `${T} ax = a, dx = c, y = b; ${asm(`${op.mnemonic} %${m}[y]`, `"+a"(ax), "+d"(dx), [fl]"=&r"(fl)`, `[y]"r"(y)`)} *r1 = ax; *r2 = dx;`;
    case 'scan':
      return `${T} x = b, y = a; ${asm(`${op.mnemonic} %${m}[y], %${m}[x]`, `[x]"+r"(x), [fl]"=&r"(fl)`, `[y]"r"(y)`)} *r1 = x;`;
    case 'cmpxchg':
      return `${T} acc = a, d = b, s = c; ${asm(`cmpxchg %${m}[s], %${m}[d]`, `"+a"(acc), [d]"+${reg}"(d), [fl]"=&r"(fl)`, `[s]"${reg}"(s)`)} *r1 = d; *r2 = acc;`;
    case 'xadd':
      return `${T} d = a, s = b; ${asm(`xadd %${m}[s], %${m}[d]`, `[d]"+${reg}"(d), [s]"+${reg}"(s), [fl]"=&r"(fl)`, `"r"(0)`)} *r1 = d; *r2 = s;`;
  }
}

function cSource(names: readonly string[]): string {
  const fns: string[] = [];
  const table: string[] = [];
  names.forEach((name, i) => {
    const op = HOST_OPS[name]!;
    const row: string[] = [];
    for (let s = 0; s <= 8; s++) {
      if (!op.sizes.includes(s)) { row.push('0'); continue; }
      const fn = `f_${name}_${s}`;
      fns.push(`static void ${fn}(uint64_t a, uint64_t b, uint64_t c, uint64_t fin, uint64_t *r1, uint64_t *r2, uint64_t *fo) {
  uint64_t fl; (void)c; ${body(op, s)} *fo = fl;
}`);
      row.push(fn);
    }
    table.push(`/* ${i} ${name} */ { ${row.join(', ')} }`);
  });
  return `#include <stdint.h>
#include <stdio.h>
typedef void (*fn_t)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t *, uint64_t *, uint64_t *);
${fns.join('\n')}
static fn_t table[${names.length}][9] = {
${table.join(',\n')}
};
int main(void) {
  unsigned op, size; unsigned long long a, b, c, f;
  static char buf[1 << 16]; setvbuf(stdout, buf, _IOFBF, sizeof buf);
  while (scanf("%x %x %llx %llx %llx %llx", &op, &size, &a, &b, &c, &f) == 6) {
    uint64_t r1 = 0, r2 = 0, fo = 0;
    /* keep only status flags (CF PF AF ZF SF OF) plus the fixed bit 1 */
    table[op][size](a, b, c, (f & 0x8d5) | 2, &r1, &r2, &fo);
    printf("%llx %llx %llx\\n", (unsigned long long)r1, (unsigned long long)r2, (unsigned long long)(fo & 0x8d5));
  }
  return 0;
}
`;
}

export interface HostCase { a: bigint; b: bigint; c: bigint; flags: number }
export interface HostResult { r1: bigint; r2: bigint; flags: number }

/** A compiled oracle; `run` executes a batch of cases for one op and size. */
export interface HostCpu {
  readonly vendor: string;
  run(name: string, size: number, cases: readonly HostCase[]): HostResult[];
  dispose(): void;
}

/** Why the oracle is unavailable, or the oracle itself. Only on x86-64 Linux with gcc. */
export function openHostCpu(): HostCpu | string {
  if (process.arch !== 'x64') return `host is ${process.arch}, not x86-64`;
  const which = spawnSync('gcc', ['--version'], { encoding: 'utf8' });
  if (which.error || which.status !== 0) return 'gcc is not available';
  const names = Object.keys(HOST_OPS);
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-alu-oracle-'));
  const src = join(dir, 'oracle.c'), exe = join(dir, 'oracle');
  writeFileSync(src, cSource(names));
  // No red zone: the inline asm pushes and pops below the stack pointer.
  const cc = spawnSync('gcc', ['-O1', '-mno-red-zone', '-o', exe, src], { encoding: 'utf8' });
  if (cc.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return `gcc failed to build the oracle: ${cc.stderr.slice(0, 2000)}`;
  }
  let vendor = 'unknown';
  try {
    const m = /vendor_id\s*:\s*(\S+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) vendor = m[1]!;
  } catch { /* not Linux */ }
  return {
    vendor,
    run(name, size, cases) {
      const op = names.indexOf(name);
      if (op < 0) throw new Error(`unknown oracle op ${name}`);
      const input = cases.map((k) => `${op.toString(16)} ${size.toString(16)} ${BigInt.asUintN(64, k.a).toString(16)} ` +
        `${BigInt.asUintN(64, k.b).toString(16)} ${BigInt.asUintN(64, k.c).toString(16)} ${k.flags.toString(16)}`).join('\n') + '\n';
      const p = spawnSync(exe, [], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
      if (p.status !== 0) throw new Error(`oracle ${name}/${size} exited with ${p.status} ${p.signal ?? ''}`);
      const lines = p.stdout.trim().split('\n');
      if (lines.length !== cases.length) throw new Error(`oracle ${name}/${size}: ${lines.length} results for ${cases.length} cases`);
      return lines.map((l) => {
        const [r1, r2, f] = l.split(' ');
        return { r1: BigInt('0x' + r1), r2: BigInt('0x' + r2), flags: parseInt(f!, 16) };
      });
    },
    dispose() { rmSync(dir, { recursive: true, force: true }); },
  };
}
