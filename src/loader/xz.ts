/**
 * A small XZ decoder: the .xz container (stream header, blocks, stopping at the index), the LZMA2
 * filter and the x86 BCJ filter, which is what Linux uses for an XZ-compressed x86 kernel
 * (scripts/xz_wrap.sh: --x86 --lzma2, CRC32 check). Decodes the first stream and ignores what
 * follows it (a bzImage appends the uncompressed size). The output is bounded by the caller's
 * maxBytes: a small stream that inflates beyond it is refused as soon as a chunk would pass it,
 * and no buffer larger than maxBytes is ever allocated. Written from the .xz file format
 * specification and the LZMA/LZMA2 format descriptions; verified against the xz tool in tests.
 */
import * as zlib from 'node:zlib';
import { TsvmmError } from '../common/errors.js';

export const XZ_MAGIC = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00] as const;
/** This decoder and its revision, for caches of what it decoded: change it when its output could change. */
export const XZ_DECODER_ID = 'tsvmm xz 1';
const FILTER_X86 = 0x04;
const FILTER_LZMA2 = 0x21;
const CHECK_NONE = 0;
const CHECK_CRC32 = 1;

function bad(message: string): TsvmmError {
  return new TsvmmError('TSVMM_BAD_KERNEL', `xz: ${message}`);
}

export function isXz(data: Uint8Array): boolean {
  return data.length >= 6 && XZ_MAGIC.every((b, i) => data[i] === b);
}

const CRC32_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** zlib's CRC-32 in Node (20.15 and later): about 15 times faster than the table over a kernel. */
const zlibCrc32: ((data: Uint8Array) => number) | undefined = typeof zlib.crc32 === 'function' ? zlib.crc32 : undefined;

/** CRC-32 (the .xz check, IEEE 802.3) of data[start, end). */
export function crc32(data: Uint8Array, start = 0, end = data.length): number {
  return zlibCrc32 ? zlibCrc32(data.subarray(start, end)) >>> 0 : tableCrc32(data, start, end);
}

/** The same CRC from a table, for a Node without zlib.crc32. */
export function tableCrc32(data: Uint8Array, start = 0, end = data.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC32_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** Size in bytes of a block's check field, by check type (0-15). */
function checkSize(type: number): number {
  if (type === 0) return 0;
  return 4 << Math.floor((type - 1) / 3);
}

/**
 * A growable output buffer that is also the LZMA dictionary (all output is kept), never larger
 * than `limit` bytes: asking for more throws TSVMM_LIMIT.
 */
class Output {
  buf: Uint8Array;
  pos = 0;
  constructor(capacity: number, readonly limit: number) {
    this.buf = new Uint8Array(Math.min(Math.max(capacity, 1 << 16), limit));
  }
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    if (this.pos + n > this.limit) {
      throw new TsvmmError('TSVMM_LIMIT', `xz: the data inflates beyond ${this.limit} bytes`, { limit: this.limit });
    }
    let cap = Math.max(this.buf.length * 2, 1 << 16);
    while (cap < this.pos + n) cap *= 2;
    const next = new Uint8Array(Math.min(cap, this.limit));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
  }
}

export interface XzDecompressOptions {
  /** The most bytes the output may have; a stream that inflates beyond it is refused (TSVMM_LIMIT). */
  maxBytes: number;
  /** The expected output size, to allocate once (capped by maxBytes). */
  sizeHint?: number;
}

/** Decompresses the first .xz stream in `input`, into at most `maxBytes`. */
export function xzDecompress(input: Uint8Array, { maxBytes, sizeHint = 0 }: XzDecompressOptions): Uint8Array {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `xz: maxBytes ${maxBytes} is not a byte count`);
  if (input.length < 12 || !isXz(input)) throw bad('no stream header magic (FD 37 7A 58 5A 00)');
  if (input[6] !== 0 || (input[7]! & 0xf0) !== 0) throw bad(`unsupported stream flags ${input[6]!.toString(16)} ${input[7]!.toString(16)}`);
  const checkType = input[7]! & 0x0f;
  if (crc32(input, 6, 8) !== readU32(input, 8)) throw bad('stream header CRC32 mismatch');
  const out = new Output(sizeHint, maxBytes);
  let p = 12;
  for (;;) {
    if (p >= input.length) throw bad('truncated before the index');
    if (input[p] === 0) break; // index indicator: no more blocks
    p = decodeBlock(input, p, checkType, out);
  }
  // A view, not a copy: the output may be most of the limit.
  return out.buf.subarray(0, out.pos);
}

function readU32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}

/** Reads a multibyte integer (7 bits per byte, little-endian, at most 9 bytes). */
function readVarint(b: Uint8Array, at: { p: number }, end: number): number {
  let v = 0;
  for (let i = 0; i < 9; i++) {
    if (at.p >= end) throw bad('truncated integer in a block header');
    const byte = b[at.p++]!;
    v += (byte & 0x7f) * 2 ** (7 * i);
    if (!(byte & 0x80)) return v;
  }
  throw bad('integer in a block header is too long');
}

function decodeBlock(input: Uint8Array, start: number, checkType: number, out: Output): number {
  const headerSize = (input[start]! + 1) * 4;
  const headerEnd = start + headerSize;
  if (headerEnd > input.length) throw bad('truncated block header');
  if (crc32(input, start, headerEnd - 4) !== readU32(input, headerEnd - 4)) throw bad(`block header CRC32 mismatch at ${start}`);
  const flags = input[start + 1]!;
  if (flags & 0x3c) throw bad(`reserved block flags ${flags.toString(16)}`);
  const at = { p: start + 2 };
  const compressedSize = flags & 0x40 ? readVarint(input, at, headerEnd - 4) : undefined;
  const uncompressedSize = flags & 0x80 ? readVarint(input, at, headerEnd - 4) : undefined;
  const filters: { id: number; props: Uint8Array }[] = [];
  for (let i = 0; i < (flags & 3) + 1; i++) {
    const id = readVarint(input, at, headerEnd - 4);
    const size = readVarint(input, at, headerEnd - 4);
    filters.push({ id, props: input.subarray(at.p, at.p + size) });
    at.p += size;
  }
  const last = filters.at(-1)!;
  if (last.id !== FILTER_LZMA2 || last.props.length !== 1) throw bad(`last filter ${last.id.toString(16)} is not LZMA2`);
  for (const f of filters.slice(0, -1)) {
    if (f.id !== FILTER_X86) throw bad(`filter 0x${f.id.toString(16)} is not supported (only x86 BCJ and LZMA2)`);
    if (f.props.length !== 0 && (f.props.length !== 4 || readU32(f.props, 0) !== 0)) throw bad('x86 BCJ start offsets are not supported');
  }
  const dataStart = out.pos;
  checkLzma2DictSize(last.props[0]!);
  const end = decodeLzma2(input, headerEnd, out);
  if (compressedSize !== undefined && end - headerEnd !== compressedSize) throw bad('block compressed size mismatch');
  if (uncompressedSize !== undefined && out.pos - dataStart !== uncompressedSize) throw bad('block uncompressed size mismatch');
  if (filters.length > 1) x86BcjDecode(out.buf.subarray(dataStart, out.pos));
  let p = end;
  while (p % 4 !== 0) {
    if (input[p++] !== 0) throw bad('nonzero block padding');
  }
  const cs = checkSize(checkType);
  if (p + cs > input.length) throw bad('truncated block check');
  if (checkType === CHECK_CRC32 && crc32(out.buf, dataStart, out.pos) !== readU32(input, p)) throw bad('block CRC32 mismatch: corrupt data');
  // Other check types (CRC64, SHA-256) are skipped, not verified.
  void CHECK_NONE;
  return p + cs;
}

/**
 * Refuses an invalid LZMA2 dictionary-size property (above 40). The size itself is not needed:
 * all output is kept, so any dictionary size fits.
 */
function checkLzma2DictSize(prop: number): void {
  if (prop > 40) throw bad(`LZMA2 dictionary size property ${prop} is invalid`);
}

// ---- LZMA ----

const NUM_STATES = 12;
const POS_STATES_MAX = 16;
const LEN_LOW = 8;
const LEN_HIGH = 256;
const END_POS_MODEL = 14;
const FULL_DISTANCES = 128;
const ALIGN_BITS = 4;
const PROB_INIT = 1024;

class LenDecoder {
  choice = PROB_INIT;
  choice2 = PROB_INIT;
  low = new Uint16Array(POS_STATES_MAX * LEN_LOW);
  mid = new Uint16Array(POS_STATES_MAX * LEN_LOW);
  high = new Uint16Array(LEN_HIGH);
  reset(): void {
    this.choice = this.choice2 = PROB_INIT;
    this.low.fill(PROB_INIT);
    this.mid.fill(PROB_INIT);
    this.high.fill(PROB_INIT);
  }
}

class LzmaDecoder {
  // Range decoder.
  input!: Uint8Array;
  inPos = 0;
  range = 0;
  code = 0;
  // Properties.
  lc = 0;
  lp = 0;
  pb = 0;
  literal = new Uint16Array(0x300 << 4);
  // Model.
  state = 0;
  rep0 = 0;
  rep1 = 0;
  rep2 = 0;
  rep3 = 0;
  isMatch = new Uint16Array(NUM_STATES * POS_STATES_MAX);
  isRep = new Uint16Array(NUM_STATES);
  isRepG0 = new Uint16Array(NUM_STATES);
  isRepG1 = new Uint16Array(NUM_STATES);
  isRepG2 = new Uint16Array(NUM_STATES);
  isRep0Long = new Uint16Array(NUM_STATES * POS_STATES_MAX);
  posSlot = new Uint16Array(4 * 64);
  posSpecial = new Uint16Array(FULL_DISTANCES - END_POS_MODEL);
  align = new Uint16Array(1 << ALIGN_BITS);
  len = new LenDecoder();
  repLen = new LenDecoder();

  setProps(props: number): void {
    if (props >= 9 * 5 * 5) throw bad(`LZMA properties byte ${props} is invalid`);
    this.lc = props % 9;
    this.lp = Math.floor(props / 9) % 5;
    this.pb = Math.floor(props / 45);
    if (this.lc + this.lp > 4) throw bad(`LZMA2 requires lc + lp <= 4, got ${this.lc} + ${this.lp}`);
    this.literal = new Uint16Array(0x300 << (this.lc + this.lp));
  }

  resetState(): void {
    this.state = 0;
    this.rep0 = this.rep1 = this.rep2 = this.rep3 = 0;
    for (const a of [this.literal, this.isMatch, this.isRep, this.isRepG0, this.isRepG1, this.isRepG2, this.isRep0Long, this.posSlot, this.posSpecial, this.align]) {
      a.fill(PROB_INIT);
    }
    this.len.reset();
    this.repLen.reset();
  }

  initRange(input: Uint8Array, at: number): void {
    if (input[at] !== 0) throw bad('LZMA chunk does not start with a zero byte');
    this.input = input;
    this.code = readU32be(input, at + 1);
    this.range = 0xffffffff;
    this.inPos = at + 5;
  }

  private normalize(): void {
    if (this.range < 0x1000000) {
      this.range = (this.range * 256) >>> 0;
      this.code = ((this.code * 256) + this.input[this.inPos++]!) >>> 0;
    }
  }

  bit(probs: Uint16Array, i: number): number {
    const p = probs[i]!;
    const bound = (this.range >>> 11) * p;
    let b: number;
    if (this.code < bound) {
      this.range = bound;
      probs[i] = p + ((2048 - p) >>> 5);
      b = 0;
    } else {
      this.range -= bound;
      this.code -= bound;
      probs[i] = p - (p >>> 5);
      b = 1;
    }
    this.normalize();
    return b;
  }

  /** A bit from a single probability held in an object field (the length decoders' choices). */
  private bitField(d: LenDecoder, key: 'choice' | 'choice2'): number {
    const p = d[key];
    const bound = (this.range >>> 11) * p;
    let b: number;
    if (this.code < bound) {
      this.range = bound;
      d[key] = p + ((2048 - p) >>> 5);
      b = 0;
    } else {
      this.range -= bound;
      this.code -= bound;
      d[key] = p - (p >>> 5);
      b = 1;
    }
    this.normalize();
    return b;
  }

  private direct(count: number): number {
    let v = 0;
    for (let i = 0; i < count; i++) {
      this.range >>>= 1;
      let b = 0;
      if (this.code >= this.range) {
        this.code -= this.range;
        b = 1;
      }
      v = ((v << 1) | b) >>> 0;
      this.normalize();
    }
    return v;
  }

  private tree(probs: Uint16Array, base: number, bits: number): number {
    let m = 1;
    for (let i = 0; i < bits; i++) m = (m << 1) | this.bit(probs, base + m);
    return m - (1 << bits);
  }

  private reverseTree(probs: Uint16Array, base: number, bits: number): number {
    let m = 1;
    let sym = 0;
    for (let i = 0; i < bits; i++) {
      const b = this.bit(probs, base + m);
      m = (m << 1) | b;
      sym |= b << i;
    }
    return sym;
  }

  private decodeLen(d: LenDecoder, posState: number): number {
    if (this.bitField(d, 'choice') === 0) return this.tree(d.low, posState * LEN_LOW - 1 + 0, 3) + 0;
    if (this.bitField(d, 'choice2') === 0) return 8 + this.tree(d.mid, posState * LEN_LOW - 1, 3);
    return 16 + this.tree(d.high, -1, 8);
  }

  private decodeDistance(len: number): number {
    const lenState = Math.min(len, 3);
    const slot = this.tree(this.posSlot, lenState * 64 - 1, 6);
    if (slot < 4) return slot;
    const direct = (slot >>> 1) - 1;
    let dist = ((2 | (slot & 1)) << direct) >>> 0;
    if (slot < END_POS_MODEL) return dist + this.reverseTree(this.posSpecial, dist - slot - 1, direct);
    dist = (dist + this.direct(direct - ALIGN_BITS) * 16) >>> 0;
    return (dist + this.reverseTree(this.align, -1, ALIGN_BITS)) >>> 0;
  }

  /** Decodes until `outEnd` bytes of output; `dictStart` is where the dictionary was last reset. */
  decode(out: Output, outEnd: number, dictStart: number): void {
    out.ensure(outEnd - out.pos);
    const buf = out.buf;
    let pos = out.pos;
    const pbMask = (1 << this.pb) - 1;
    const lpMask = (1 << this.lp) - 1;
    const lc = this.lc;
    while (pos < outEnd) {
      // Positions count from the last dictionary reset.
      const rel = pos - dictStart;
      const posState = rel & pbMask;
      const st = this.state;
      if (this.bit(this.isMatch, st * POS_STATES_MAX + posState) === 0) {
        const prev = pos > dictStart ? buf[pos - 1]! : 0;
        const base = 0x300 * (((rel & lpMask) << lc) + (prev >>> (8 - lc)));
        let sym = 1;
        if (st >= 7) {
          if (this.rep0 >= rel) throw bad('match distance beyond the dictionary');
          let matchByte = buf[pos - this.rep0 - 1]!;
          while (sym < 0x100) {
            const matchBit = (matchByte >>> 7) & 1;
            matchByte <<= 1;
            const b = this.bit(this.literal, base + 0x100 + (matchBit << 8) + sym);
            sym = (sym << 1) | b;
            if (matchBit !== b) break;
          }
        }
        while (sym < 0x100) sym = (sym << 1) | this.bit(this.literal, base + sym);
        buf[pos++] = sym & 0xff;
        this.state = st < 4 ? 0 : st < 10 ? st - 3 : st - 6;
        continue;
      }
      let len: number;
      if (this.bit(this.isRep, st) === 0) {
        len = this.decodeLen(this.len, posState);
        this.state = st < 7 ? 7 : 10;
        const dist = this.decodeDistance(len);
        if (dist === 0xffffffff) throw bad('unexpected end marker in an LZMA2 chunk');
        this.rep3 = this.rep2;
        this.rep2 = this.rep1;
        this.rep1 = this.rep0;
        this.rep0 = dist;
      } else {
        if (this.bit(this.isRepG0, st) === 0) {
          if (this.bit(this.isRep0Long, st * POS_STATES_MAX + posState) === 0) {
            this.state = st < 7 ? 9 : 11;
            if (pos - this.rep0 - 1 < dictStart) throw bad('match distance beyond the dictionary');
            buf[pos] = buf[pos - this.rep0 - 1]!;
            pos++;
            continue;
          }
        } else {
          let dist: number;
          if (this.bit(this.isRepG1, st) === 0) dist = this.rep1;
          else {
            if (this.bit(this.isRepG2, st) === 0) dist = this.rep2;
            else {
              dist = this.rep3;
              this.rep3 = this.rep2;
            }
            this.rep2 = this.rep1;
          }
          this.rep1 = this.rep0;
          this.rep0 = dist;
        }
        len = this.decodeLen(this.repLen, posState);
        this.state = st < 7 ? 8 : 11;
      }
      let n = len + 2;
      let src = pos - this.rep0 - 1;
      if (src < dictStart) throw bad(`match distance ${this.rep0 + 1} beyond the dictionary`);
      if (n > outEnd - pos) throw bad('match runs past the chunk end');
      while (n-- > 0) buf[pos++] = buf[src++]!;
    }
    out.pos = pos;
  }
}

function readU32be(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/** Decodes LZMA2 chunks from `at` until the end marker; returns the input position after it. */
function decodeLzma2(input: Uint8Array, at: number, out: Output): number {
  const lzma = new LzmaDecoder();
  let p = at;
  let dictStart = out.pos;
  let needDictReset = true;
  let needProps = true;
  for (;;) {
    if (p >= input.length) throw bad('truncated LZMA2 data');
    const control = input[p++]!;
    if (control === 0) return p;
    if (control === 1 || control === 2) {
      if (control === 1) dictStart = out.pos;
      else if (needDictReset) throw bad('LZMA2 stream does not start with a dictionary reset');
      needDictReset = false;
      if (p + 2 > input.length) throw bad('truncated LZMA2 chunk header');
      const size = ((input[p]! << 8) | input[p + 1]!) + 1;
      p += 2;
      if (p + size > input.length) throw bad('truncated uncompressed LZMA2 chunk');
      out.ensure(size);
      out.buf.set(input.subarray(p, p + size), out.pos);
      out.pos += size;
      p += size;
      continue;
    }
    if (control < 0x80) throw bad(`invalid LZMA2 control byte 0x${control.toString(16)}`);
    if (p + 4 > input.length) throw bad('truncated LZMA2 chunk header');
    const unpacked = ((control & 0x1f) << 16) + ((input[p]! << 8) | input[p + 1]!) + 1;
    const packed = ((input[p + 2]! << 8) | input[p + 3]!) + 1;
    p += 4;
    const reset = (control >>> 5) & 3;
    if (reset === 3) {
      dictStart = out.pos;
      needDictReset = false;
    } else if (needDictReset) throw bad('LZMA2 stream does not start with a dictionary reset');
    if (reset >= 2) {
      lzma.setProps(input[p++]!);
      needProps = false;
    } else if (needProps) throw bad('LZMA2 chunk without properties');
    if (reset >= 1) lzma.resetState();
    if (p + packed > input.length) throw bad('truncated LZMA2 chunk');
    lzma.initRange(input, p);
    lzma.decode(out, out.pos + unpacked, dictStart);
    if (lzma.inPos > p + packed) throw bad('LZMA2 chunk overran its packed size');
    p += packed;
  }
}

// ---- x86 BCJ ----

/** Undoes the x86 branch converter in place: E8/E9 rel32 targets were made absolute when encoding. */
export function x86BcjDecode(buf: Uint8Array): void {
  // For a prefix mask of recent E8/E9-free-but-suspicious bytes: is conversion allowed, and which byte to test.
  const allowed = [true, true, true, false, true, false, false, false];
  const bitNumber = [0, 1, 2, 2, 3, 3, 3, 3];
  const msByte = (b: number): boolean => b === 0 || b === 0xff;
  let prevMask = 0;
  let prevPos = -5;
  const limit = buf.length - 5;
  let i = 0;
  while (i <= limit) {
    const op = buf[i]!;
    if (op !== 0xe8 && op !== 0xe9) {
      i++;
      continue;
    }
    const gap = i - prevPos;
    prevPos = i;
    if (gap > 5) prevMask = 0;
    else for (let k = 0; k < gap; k++) prevMask = ((prevMask & 0x77) << 1) & 0xff;
    const top = buf[i + 4]!;
    if (msByte(top) && allowed[(prevMask >>> 1) & 7] && prevMask >>> 1 < 0x10) {
      let src = ((top << 24) | (buf[i + 3]! << 16) | (buf[i + 2]! << 8) | buf[i + 1]!) >>> 0;
      let dest: number;
      for (;;) {
        dest = (src - (i + 5)) >>> 0;
        if (prevMask === 0) break;
        const n = bitNumber[prevMask >>> 1]!;
        const b = (dest >>> (24 - n * 8)) & 0xff;
        if (!msByte(b)) break;
        src = (dest ^ (2 ** (32 - n * 8) - 1)) >>> 0;
      }
      buf[i + 4] = (dest >>> 24) & 1 ? 0xff : 0x00;
      buf[i + 3] = (dest >>> 16) & 0xff;
      buf[i + 2] = (dest >>> 8) & 0xff;
      buf[i + 1] = dest & 0xff;
      i += 5;
      prevMask = 0;
    } else {
      i++;
      prevMask |= 1;
      if (msByte(top)) prevMask |= 0x10;
    }
  }
}
