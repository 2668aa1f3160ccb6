/**
 * The WebAssembly binary encoder of the soft CPU's block compiler (jit-wasm.ts): LEB128 numbers,
 * function bodies with their locals, sections and modules, written into growable byte buffers.
 * It knows the binary format only (WebAssembly Core Specification 1.0, chapter 5, with the SIMD
 * value type), nothing of x86 or of the compiler's conventions.
 *
 * Why byte buffers: the compiler emits a region's module on the vCPU thread, when the region
 * becomes hot; building it in JS arrays of numbers, a push per byte and a copy per nesting level,
 * cost more than V8's compilation of the result. A ByteWriter is one Uint8Array that doubles when
 * full, and a body or section is copied into its parent once, with `set`.
 */

/** Value types and the empty block type. */
export const T_I32 = 0x7f, T_I64 = 0x7e, T_V128 = 0x7b, T_VOID = 0x40;

/** The opcodes the compiler uses. */
export const OP = {
  unreachable: 0x00,
  block: 0x02, loop: 0x03, if: 0x04, else: 0x05, end: 0x0b, br: 0x0c, br_if: 0x0d, br_table: 0x0e, return: 0x0f, call: 0x10, call_indirect: 0x11,
  drop: 0x1a, select: 0x1b, lget: 0x20, lset: 0x21, ltee: 0x22,
  i32load: 0x28, i64load: 0x29, i32load8u: 0x2d, i32load16u: 0x2f, i64load8u: 0x31, i64load16u: 0x33, i64load32u: 0x35,
  i32store: 0x36, i64store: 0x37, i64store8: 0x3c, i64store16: 0x3d, i64store32: 0x3e,
  i32const: 0x41, i64const: 0x42,
  i32eqz: 0x45, i32eq: 0x46, i32ne: 0x47, i32ltu: 0x49, i32geu: 0x4f, i32leu: 0x4d, i32gts: 0x4a,
  i64eqz: 0x50, i64eq: 0x51, i64ne: 0x52, i64lts: 0x53, i64ltu: 0x54, i64les: 0x57, i64leu: 0x58,
  i32add: 0x6a, i32sub: 0x6b, i32and: 0x71, i32or: 0x72, i32xor: 0x73, i32shl: 0x74, i32shru: 0x76,
  i64add: 0x7c, i64sub: 0x7d, i64mul: 0x7e, i64and: 0x83, i64or: 0x84, i64xor: 0x85, i64shl: 0x86, i64shrs: 0x87, i64shru: 0x88, i64rotl: 0x89, i64rotr: 0x8a,
  i32wrap: 0xa7, i64extu: 0xad, i64ext8s: 0xc2, i64ext16s: 0xc3, i64ext32s: 0xc4,
} as const;

/** Section ids. */
export const SEC_TYPE = 1, SEC_IMPORT = 2, SEC_FUNCTION = 3, SEC_EXPORT = 7, SEC_CODE = 10;
/** Import and export kinds. */
export const EXT_FUNC = 0x00, EXT_TABLE = 0x01, EXT_MEMORY = 0x02;
/** The function type constructor and the funcref element type. */
export const FUNC_TYPE = 0x60, FUNCREF = 0x70;

/** The magic number and version 1. */
export const WASM_HEADER: readonly number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

/** Bytes in the unsigned LEB128 encoding of v (a non-negative safe integer). */
export function ulebSize(v: number): number {
  let n = 1;
  while (v >= 128) { v = Math.floor(v / 128); n++; }
  return n;
}

/** A growable byte buffer with the format's number encodings. */
export class ByteWriter {
  buf: Uint8Array;
  len = 0;

  constructor(capacity = 64) {
    this.buf = new Uint8Array(capacity);
  }

  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const b = new Uint8Array(cap);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }

  byte(b: number): this {
    if (this.len === this.buf.length) this.room(1);
    this.buf[this.len++] = b;
    return this;
  }

  bytes(src: ArrayLike<number>): this {
    this.room(src.length);
    for (let k = 0; k < src.length; k++) this.buf[this.len + k] = src[k]!;
    this.len += src.length;
    return this;
  }

  /** Appends what `w` holds. */
  append(w: ByteWriter): this {
    this.room(w.len);
    this.buf.set(w.buf.subarray(0, w.len), this.len);
    this.len += w.len;
    return this;
  }

  /** Unsigned LEB128 of a non-negative safe integer. */
  uleb(v: number): this {
    do {
      let b = v % 128;
      v = Math.floor(v / 128);
      if (v !== 0) b |= 0x80;
      this.byte(b);
    } while (v !== 0);
    return this;
  }

  /** Signed LEB128 of an int32 (no BigInt on the compile path). */
  sleb32(v: number): this {
    v |= 0;
    for (;;) {
      const b = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) return this.byte(b);
      this.byte(b | 0x80);
    }
  }

  /** Signed LEB128 of a 64-bit value given as a BigInt (an int32 takes sleb32's path). */
  sleb64(v: bigint): this {
    v = BigInt.asIntN(64, v);
    if (v >= -0x80000000n && v <= 0x7fffffffn) return this.sleb32(Number(v));
    for (;;) {
      const b = Number(v & 0x7fn);
      v >>= 7n;
      if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) return this.byte(b);
      this.byte(b | 0x80);
    }
  }

  /** A name: its length, then its characters (ASCII). */
  name(s: string): this {
    this.uleb(s.length);
    for (let k = 0; k < s.length; k++) this.byte(s.charCodeAt(k));
    return this;
  }

  /** Empties the buffer (keeping its memory) for reuse. */
  reset(): this {
    this.len = 0;
    return this;
  }

  /** A copy of the bytes written. */
  toBytes(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/** A function body: its code as emitted, and the locals it declares after its parameters. */
export class Body {
  readonly w: ByteWriter;
  readonly locals: number[] = [];
  /** `w`: where the code goes (emptied first; a caller may lend a buffer it reuses). */
  constructor(readonly params: number, w?: ByteWriter) {
    this.w = w !== undefined ? w.reset() : new ByteWriter(256);
  }
  /** Declares a local of `type`; returns its index. */
  local(type: number): number { this.locals.push(type); return this.params + this.locals.length - 1; }
  op(...x: number[]): this { for (let k = 0; k < x.length; k++) this.w.byte(x[k]!); return this; }
  /** A raw unsigned LEB128 immediate (br_table's targets, say). */
  uleb(v: number): this { this.w.uleb(v); return this; }
  get(l: number): this { this.w.byte(OP.lget).uleb(l); return this; }
  set(l: number): this { this.w.byte(OP.lset).uleb(l); return this; }
  tee(l: number): this { this.w.byte(OP.ltee).uleb(l); return this; }
  i32(v: number): this { this.w.byte(OP.i32const).sleb32(v); return this; }
  i64(v: bigint): this { this.w.byte(OP.i64const).sleb64(v); return this; }
  /** i64.const of an int32 value (sign-extended), without a BigInt. */
  i64s32(v: number): this { this.w.byte(OP.i64const).sleb32(v); return this; }
  /** A load or store: opcode, alignment (log2), offset. */
  mem(opcode: number, align: number, offset: number): this { this.w.byte(opcode).byte(align).uleb(offset); return this; }
  call(f: number): this { this.w.byte(OP.call).uleb(f); return this; }
  br(depth: number): this { this.w.byte(OP.br).uleb(depth); return this; }

  /** Writes the body as the code section holds it: its size, the locals in runs of one type, the code and `end`. */
  encodeTo(out: ByteWriter): void {
    const L = this.locals;
    // The size first: the run count, each run's count and type, the code, `end`.
    let runs = 0, size = this.w.len + 1;
    for (let k = 0; k < L.length;) {
      const t = L[k]!;
      let n = 0;
      while (k < L.length && L[k] === t) { n++; k++; }
      runs++;
      size += ulebSize(n) + 1;
    }
    out.uleb(size + ulebSize(runs)).uleb(runs);
    for (let k = 0; k < L.length;) {
      const t = L[k]!;
      let n = 0;
      while (k < L.length && L[k] === t) { n++; k++; }
      out.uleb(n).byte(t);
    }
    out.append(this.w).byte(OP.end);
  }

  /** The body as the code section holds it (encodeTo into a new buffer). */
  encode(): Uint8Array {
    const w = new ByteWriter(this.w.len + 16);
    this.encodeTo(w);
    return w.toBytes();
  }
}

/** A function signature: parameter and result types. */
export type Signature = readonly [readonly number[], readonly number[]];

/** A module being written: the header, then sections in the order they are added (the caller keeps the format's order). */
export class ModuleWriter {
  readonly out: ByteWriter;

  /** `out`: where the module goes (emptied first; a caller may lend a buffer it reuses). */
  constructor(out?: ByteWriter) {
    this.out = out !== undefined ? out.reset() : new ByteWriter(1024);
    this.out.bytes(WASM_HEADER);
  }

  /** Adds section `id` with the content `body` holds (its size first). */
  section(id: number, body: ByteWriter): this {
    this.out.byte(id).uleb(body.len).append(body);
    return this;
  }

  /** Adds the type section of `sigs`. */
  types(sigs: readonly Signature[]): this {
    const w = new ByteWriter();
    w.uleb(sigs.length);
    for (const [p, r] of sigs) w.byte(FUNC_TYPE).uleb(p.length).bytes(p).uleb(r.length).bytes(r);
    return this.section(SEC_TYPE, w);
  }

  /** Adds the function section: the type index of each function the module defines. */
  functions(typeIndices: readonly number[]): this {
    const w = new ByteWriter();
    w.uleb(typeIndices.length);
    for (const t of typeIndices) w.uleb(t);
    return this.section(SEC_FUNCTION, w);
  }

  /** Adds the export section: functions by name. */
  exportFunctions(exports: readonly (readonly [string, number])[]): this {
    const w = new ByteWriter();
    w.uleb(exports.length);
    for (const [nm, f] of exports) w.name(nm).byte(EXT_FUNC).uleb(f);
    return this.section(SEC_EXPORT, w);
  }

  /** Adds the code section: the bodies, already encoded (Body.encodeTo) into `bodies`, `count` of them. */
  code(count: number, bodies: ByteWriter): this {
    this.out.byte(SEC_CODE).uleb(ulebSize(count) + bodies.len).uleb(count).append(bodies);
    return this;
  }

  toBytes(): Uint8Array {
    return this.out.toBytes();
  }
}
