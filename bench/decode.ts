/**
 * Decoder throughput: instructions decoded per second over the .text of a real binary
 * (Debian's static busybox if installed, else node itself, else any ELF given as argv[2]).
 * The reference in the same run is a plain loop that reads every byte of the same .text once,
 * so the ratio says how many byte-reads one decoded instruction costs.
 *
 *   node dist/bench/decode.js [ELF]      or      npm run bench -- decode
 */
import { readFileSync, existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { decode, DecodedInsn, DecodeStatus, type CpuMode } from '../src/x86/decoder.js';

const CANDIDATES = ['/bin/busybox', '/usr/bin/busybox', process.execPath, '/bin/ls'];

interface Text {
  bytes: Uint8Array;
  mode: CpuMode;
  path: string;
}

/** Finds the .text section of an ELF file by its section headers. */
export function elfText(path: string): Text | null {
  const f = readFileSync(path);
  if (f.length < 64 || f.readUInt32BE(0) !== 0x7f454c46) return null;
  const is64 = f[4] === 2;
  const le = f[5] === 1;
  if (!le) return null;
  const shoff = is64 ? Number(f.readBigUInt64LE(0x28)) : f.readUInt32LE(0x20);
  const shentsize = f.readUInt16LE(is64 ? 0x3a : 0x2e);
  const shnum = f.readUInt16LE(is64 ? 0x3c : 0x30);
  const shstrndx = f.readUInt16LE(is64 ? 0x3e : 0x32);
  const machine = f.readUInt16LE(0x12);
  if (machine !== 62 && machine !== 3) return null; // x86-64, i386
  const sec = (i: number): { name: number; off: number; size: number } => {
    const b = shoff + i * shentsize;
    return is64
      ? { name: f.readUInt32LE(b), off: Number(f.readBigUInt64LE(b + 0x18)), size: Number(f.readBigUInt64LE(b + 0x20)) }
      : { name: f.readUInt32LE(b), off: f.readUInt32LE(b + 0x10), size: f.readUInt32LE(b + 0x14) };
  };
  const strtab = sec(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const s = sec(i);
    const nameStart = strtab.off + s.name;
    const nameEnd = f.indexOf(0, nameStart);
    if (f.toString('latin1', nameStart, nameEnd) === '.text') {
      return { bytes: new Uint8Array(f.buffer, f.byteOffset + s.off, s.size), mode: machine === 62 ? 64 : 32, path };
    }
  }
  return null;
}

function findText(arg: string | undefined): Text {
  for (const p of arg ? [arg] : CANDIDATES) {
    if (existsSync(p)) {
      const t = elfText(p);
      if (t) return t;
    }
  }
  throw new Error('bench/decode: no x86 ELF with a .text section found');
}

/** Decodes the whole buffer linearly; returns the instruction count. */
function decodeAll(code: Uint8Array, mode: CpuMode, insn: DecodedInsn): number {
  let n = 0;
  let off = 0;
  const end = code.length;
  while (off < end) {
    decode(code, off, end, mode, insn);
    off += insn.status === DecodeStatus.Ok ? insn.length : 1;
    n++;
  }
  return n;
}

function byteLoop(code: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < code.length; i++) s = (s + code[i]!) | 0;
  return s;
}

export async function run(): Promise<void> {
  const text = findText(process.argv[2]?.startsWith('/') ? process.argv[2] : undefined);
  const insn = new DecodedInsn();
  decodeAll(text.bytes, text.mode, insn); // warm-up
  byteLoop(text.bytes);
  let count = 0;
  let rounds = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < 2000 || rounds < 2) {
    count += decodeAll(text.bytes, text.mode, insn);
    rounds++;
  }
  const dt = (performance.now() - t0) / 1000;
  let sink = 0;
  let bytes = 0;
  const r0 = performance.now();
  while (performance.now() - r0 < 500) {
    sink ^= byteLoop(text.bytes);
    bytes += text.bytes.length;
  }
  const rdt = (performance.now() - r0) / 1000;
  const ips = count / dt;
  const nsPerInsn = 1e9 / ips;
  const nsPerByte = (rdt * 1e9) / bytes;
  process.stdout.write(
    `decode: ${text.path} .text ${(text.bytes.length / 1024).toFixed(0)} KiB, ${text.mode}-bit, ` +
      `${(count / rounds).toFixed(0)} instructions per pass\n` +
      `decode: ${(ips / 1e6).toFixed(2)} M instructions/s (${nsPerInsn.toFixed(1)} ns/insn); ` +
      `reference byte loop ${nsPerByte.toFixed(2)} ns/byte; ratio ${(nsPerInsn / nsPerByte).toFixed(1)} byte-reads per decode` +
      `${sink === 0.5 ? '' : ''}\n`,
  );
}

export { run as bench };

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await run();
