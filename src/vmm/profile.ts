/**
 * The soft CPU's profile as text (`tsvmm run --trace profile`): host time by phase, then the guest
 * code the samples fell in, by function when a symbol map is given, else by RIP. A symbol map is
 * the text of a System.map, of the guest's /proc/kallsyms or of `nm` (ADDRESS TYPE NAME [MODULE]
 * per line); only code symbols (types t, T, w, W) count, and a RIP belongs to the nearest one at or
 * below it, up to the next.
 */
import { hex } from '../common/bits.js';
import { TsvmmError } from '../common/errors.js';
import { PHASE_NAMES, PHASES, PH_DEVICE, PH_HALT, PH_INTERP, PH_JS, PH_NONE, PH_WALK, PH_WASM, type SoftProfile } from '../nvmm/profile.js';

/** Most symbols a map may hold (Linux with modules has ~200,000). */
export const MAX_SYMBOLS = 4_000_000;
/** A RIP past the last symbol belongs to it up to this far. */
const LAST_SYMBOL_SPAN = 0x10000n;

export interface SymbolMap {
  /** Sorted addresses of code symbols, and their names ("name" or "name [module]"). */
  readonly addrs: BigUint64Array;
  readonly names: string[];
}

const LINE = /^([0-9a-fA-F]{1,16})\s+([a-zA-Z])\s+(\S+)(?:\s+\[(\S+)\])?/;

/** Parses a System.map / kallsyms / nm listing; `what` names it in errors. */
export function parseSymbolMap(text: string, what = 'symbol map'): SymbolMap {
  const entries: [bigint, string][] = [];
  for (const line of text.split('\n')) {
    const m = LINE.exec(line);
    if (!m || !'tTwW'.includes(m[2]!)) continue;
    const addr = BigInt(`0x${m[1]}`);
    if (addr === 0n) continue; // kallsyms read without the right to see addresses
    if (entries.length >= MAX_SYMBOLS) throw new TsvmmError('TSVMM_LIMIT', `${what}: more than ${MAX_SYMBOLS} code symbols`);
    entries.push([addr, m[4] ? `${m[3]} [${m[4]}]` : m[3]!]);
  }
  if (entries.length === 0) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `${what}: no code symbols (lines 'ADDRESS t|T NAME', as System.map or /proc/kallsyms)`);
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { addrs: BigUint64Array.from(entries.map((e) => e[0])), names: entries.map((e) => e[1]) };
}

/** The symbol a RIP falls in, as "name+0xoff", or undefined. */
export function resolveSymbol(map: SymbolMap, rip: bigint): { name: string; offset: bigint } | undefined {
  const a = map.addrs;
  let lo = 0, hi = a.length - 1, at = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! <= rip) { at = mid; lo = mid + 1; } else hi = mid - 1;
  }
  if (at < 0) return undefined;
  const end = at + 1 < a.length ? a[at + 1]! : a[at]! + LAST_SYMBOL_SPAN;
  if (rip >= end) return undefined;
  return { name: map.names[at]!, offset: rip - a[at]! };
}

/** Columns of the per-row phase split: the code phases, page walks, devices (and a column for the rest). */
const SPLIT: { title: string; phase: number }[] = [
  { title: 'interp', phase: PH_INTERP },
  { title: 'js', phase: PH_JS },
  { title: 'wasm', phase: PH_WASM },
  { title: 'walk', phase: PH_WALK },
  { title: 'dev', phase: PH_DEVICE },
];

const KERNEL_HALF = 1n << 63n;

interface Row {
  label: string;
  samples: number[];
  total: number;
}

export interface FormatOptions {
  symbols?: SymbolMap;
  /** Rows of guest code shown (default 25). */
  top?: number;
}

/** The profile as text, for standard error at the end of a run. */
export function formatProfile(p: SoftProfile, opts: FormatOptions = {}): string {
  const top = opts.top ?? 25;
  const out: string[] = [];
  const s = (ns: number) => (ns / 1e9).toFixed(3);
  const pct = (n: number, of: number) => (of > 0 ? (100 * n) / of : 0).toFixed(1);
  out.push(`profile: ${p.samples} samples at ${p.hz} Hz over ${s(p.spanNs)} s of the boot vCPU's thread${p.delayMs ? `, from ${p.delayMs / 1000} s after its start` : ''}`);
  if (p.spanNs > 0) {
    out.push(`instructions: ${p.instructions} (${(p.instructions / (p.spanNs / 1e3)).toFixed(1)} MIPS over the time sampled), ${pct(p.interpreted, p.instructions)} % of them interpreted`);
  }
  out.push(`${'phase'.padEnd(18)} ${'seconds'.padStart(9)} ${'%'.padStart(6)}`);
  const phases = [...Array(PHASES).keys()].filter((ph) => ph !== PH_NONE).sort((a, b) => p.phaseNs[b]! - p.phaseNs[a]!);
  for (const ph of phases) {
    if (p.phaseSamples[ph] === 0) continue;
    out.push(`  ${PHASE_NAMES[ph]!.padEnd(16)} ${s(p.phaseNs[ph]!).padStart(9)} ${pct(p.phaseNs[ph]!, p.spanNs).padStart(6)}`);
  }
  const rows = new Map<string, Row>();
  let kernel = 0, user = 0;
  for (const r of p.rips) {
    const total = r.samples.reduce((a, n, ph) => (ph === PH_HALT ? a : a + n), 0);
    if (total === 0) continue;
    if (r.rip >= KERNEL_HALF) kernel += total; else user += total;
    const sym = opts.symbols ? resolveSymbol(opts.symbols, r.rip) : undefined;
    const label = sym ? sym.name : opts.symbols ? `${r.rip >= KERNEL_HALF ? 'kernel' : 'user'} ${hex(r.rip)}` : hex(r.rip);
    let row = rows.get(label);
    if (!row) { row = { label, samples: new Array<number>(PHASES).fill(0), total: 0 }; rows.set(label, row); }
    r.samples.forEach((n, ph) => { if (ph !== PH_HALT) row!.samples[ph]! += n; });
    row.total += total;
  }
  const all = kernel + user;
  out.push(`guest code (samples while halted left out): kernel (RIP >= 2^63) ${pct(kernel, all)} %, user ${pct(user, all)} %${p.dropped ? `; ${p.dropped} samples had no room in the RIP table` : ''}`);
  const sorted = [...rows.values()].sort((a, b) => b.total - a.total).slice(0, top);
  const what = opts.symbols ? 'functions' : 'RIPs (where a block or a compiled region starts)';
  out.push(`top ${sorted.length} ${what}; each one's samples by phase, in %:`);
  out.push(`${'%'.padStart(6)} ${'samples'.padStart(8)}  ${SPLIT.map((c) => c.title.padStart(6)).join('')} ${'other'.padStart(6)}  ${opts.symbols ? 'function' : 'rip'}`);
  for (const row of sorted) {
    const cols = SPLIT.map((c) => row.samples[c.phase]!);
    const other = row.total - cols.reduce((a, n) => a + n, 0);
    out.push(`${pct(row.total, all).padStart(6)} ${String(row.total).padStart(8)}  ${cols.map((n) => pct(n, row.total).padStart(6)).join('')} ${pct(other, row.total).padStart(6)}  ${row.label}`);
  }
  return `${out.join('\n')}\n`;
}
