// The WebAssembly encoder of the soft CPU's block compiler (src/backends/soft/wasm-encoder.ts): LEB128
// numbers against the format's examples and the definition, function bodies (locals in runs of one
// type, size first), section layout byte for byte, and whole modules the engine validates and runs.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  Body, ByteWriter, ModuleWriter, OP, SEC_CODE, SEC_EXPORT, SEC_FUNCTION, SEC_TYPE, T_I32, T_I64, WASM_HEADER, ulebSize,
} from '../../src/backends/soft/wasm-encoder.js';

const bytes = (f: (w: ByteWriter) => void): number[] => {
  const w = new ByteWriter(1);
  f(w);
  return [...w.toBytes()];
};

/** Decodes an unsigned LEB128 number (the definition, for round trips). */
function readUleb(b: number[]): number {
  let v = 0, mul = 1;
  for (const x of b) { v += (x & 0x7f) * mul; mul *= 128; if (!(x & 0x80)) break; }
  return v;
}

/** Decodes a signed LEB128 number as a BigInt. */
function readSleb(b: number[]): bigint {
  let v = 0n, shift = 0n, last = 0;
  for (const x of b) { v |= BigInt(x & 0x7f) << shift; shift += 7n; last = x; if (!(x & 0x80)) break; }
  if (last & 0x40) v -= 1n << shift;
  return v;
}

test('unsigned LEB128', () => {
  assert.deepEqual(bytes((w) => w.uleb(0)), [0x00]);
  assert.deepEqual(bytes((w) => w.uleb(127)), [0x7f]);
  assert.deepEqual(bytes((w) => w.uleb(128)), [0x80, 0x01]);
  assert.deepEqual(bytes((w) => w.uleb(624485)), [0xe5, 0x8e, 0x26]);
  assert.deepEqual(bytes((w) => w.uleb(0xffffffff)), [0xff, 0xff, 0xff, 0xff, 0x0f]);
  for (const v of [0, 1, 127, 128, 16383, 16384, 2 ** 21, 2 ** 32, 2 ** 40 + 5, Number.MAX_SAFE_INTEGER]) {
    const b = bytes((w) => w.uleb(v));
    assert.equal(readUleb(b), v, `${v}`);
    assert.equal(b.length, ulebSize(v), `size of ${v}`);
    assert.ok(b.slice(0, -1).every((x) => x & 0x80) && !(b[b.length - 1]! & 0x80), `continuation bits of ${v}`);
  }
});

test('signed LEB128: 32-bit and 64-bit values, the shortest form', () => {
  assert.deepEqual(bytes((w) => w.sleb32(0)), [0x00]);
  assert.deepEqual(bytes((w) => w.sleb32(-1)), [0x7f]);
  assert.deepEqual(bytes((w) => w.sleb32(63)), [0x3f]);
  assert.deepEqual(bytes((w) => w.sleb32(64)), [0xc0, 0x00]);
  assert.deepEqual(bytes((w) => w.sleb32(-64)), [0x40]);
  assert.deepEqual(bytes((w) => w.sleb32(-65)), [0xbf, 0x7f]);
  assert.deepEqual(bytes((w) => w.sleb32(-123456)), [0xc0, 0xbb, 0x78]);
  assert.deepEqual(bytes((w) => w.sleb32(-0x80000000)), [0x80, 0x80, 0x80, 0x80, 0x78]);
  assert.deepEqual(bytes((w) => w.sleb64(-(1n << 63n))), [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f]);
  assert.deepEqual(bytes((w) => w.sleb64((1n << 63n) - 1n)), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
  // sleb64 takes values as their 64-bit pattern: 2^64 - 1 is -1.
  assert.deepEqual(bytes((w) => w.sleb64((1n << 64n) - 1n)), [0x7f]);
  for (const v of [0n, 1n, -1n, 63n, 64n, -65n, 0x7fffffffn, -0x80000000n, 0x80000000n, 1n << 40n, -(1n << 40n) - 3n, 0x123456789abcdefn]) {
    const b = bytes((w) => w.sleb64(v));
    assert.equal(readSleb(b), v, `${v}`);
    // The shortest form: dropping the last byte would change the value.
    if (b.length > 1) assert.notEqual(readSleb([...b.slice(0, -2), b[b.length - 2]! & 0x7f]), v, `${v} is minimal`);
  }
  for (const v of [0, 1, -1, 1000, -1000, 0x7fffffff, -0x80000000]) assert.equal(readSleb(bytes((w) => w.sleb32(v))), BigInt(v));
});

test('a buffer grows past its capacity and keeps what it holds', () => {
  const w = new ByteWriter(2);
  for (let k = 0; k < 1000; k++) w.byte(k & 0xff);
  w.bytes([1, 2, 3]).append(new ByteWriter(1).byte(9));
  const out = w.toBytes();
  assert.equal(out.length, 1004);
  for (let k = 0; k < 1000; k++) assert.equal(out[k], k & 0xff);
  assert.deepEqual([...out.subarray(1000)], [1, 2, 3, 9]);
  assert.equal(w.reset().len, 0);
  assert.deepEqual(bytes((x) => x.name('run')), [3, 0x72, 0x75, 0x6e]);
});

test('a function body: its size, the locals in runs of one type, the code and end', () => {
  const f = new Body(2);
  assert.equal(f.local(T_I32), 2, 'locals are numbered after the parameters');
  f.local(T_I32); f.local(T_I64); f.local(T_I32);
  f.get(0).get(1).op(OP.i32add);
  const body = [3, 2, T_I32, 1, T_I64, 1, T_I32, OP.lget, 0, OP.lget, 1, OP.i32add, OP.end];
  assert.deepEqual([...f.encode()], [body.length, ...body]);
  // A long body: the size is a multi-byte LEB128.
  const g = new Body(0);
  for (let k = 0; k < 100; k++) g.i32(1000).op(OP.drop);
  const enc = [...g.encode()];
  assert.equal(readUleb(enc), 1 + 400 + 1);
  assert.equal(enc.length, 2 + 402);
  // A lent buffer is emptied first.
  const lent = new ByteWriter().bytes([7, 7, 7]);
  assert.deepEqual([...new Body(0, lent).i32(5).encode()], [4, 0, OP.i32const, 5, OP.end]);
});

test('section layout: header, then each section as id, size, content', () => {
  const m = new ModuleWriter();
  m.types([[[T_I32, T_I32], [T_I32]]]);
  m.functions([0]);
  m.exportFunctions([['add', 0]]);
  const code = new ByteWriter();
  new Body(2).get(0).get(1).op(OP.i32add).encodeTo(code);
  m.code(1, code);
  const b = [...m.toBytes()];
  assert.deepEqual(b, [
    ...WASM_HEADER,
    SEC_TYPE, 7, 1, 0x60, 2, T_I32, T_I32, 1, T_I32,
    SEC_FUNCTION, 2, 1, 0,
    SEC_EXPORT, 7, 1, 3, 0x61, 0x64, 0x64, 0x00, 0,
    SEC_CODE, 9, 1, 7, 0, OP.lget, 0, OP.lget, 1, OP.i32add, OP.end,
  ]);
  const bin = m.toBytes();
  assert.ok(WebAssembly.validate(bin));
  const add = new WebAssembly.Instance(new WebAssembly.Module(bin), {}).exports.add as (a: number, b: number) => number;
  assert.equal(add(40, 2), 42);
});

test('modules the engine runs: 64-bit constants, locals, branches', () => {
  const m = new ModuleWriter();
  m.types([[[], [T_I64]], [[T_I32], [T_I32]]]);
  m.functions([0, 0, 1]);
  m.exportFunctions([['min', 0], ['big', 1], ['count', 2]]);
  const code = new ByteWriter();
  new Body(0).i64(-(1n << 63n)).encodeTo(code);
  new Body(0).i64(0x123456789abcdefn).i64s32(-2).op(OP.i64add).encodeTo(code);
  // count(n): a loop adding 3 n times, in a local.
  const f = new Body(1);
  const acc = f.local(T_I32);
  f.op(OP.block, 0x40, OP.loop, 0x40);
  f.get(0).op(OP.i32eqz, OP.br_if, 1);
  f.get(acc).i32(3).op(OP.i32add).set(acc);
  f.get(0).i32(1).op(OP.i32sub).set(0);
  f.br(0).op(OP.end, OP.end).get(acc);
  f.encodeTo(code);
  m.code(3, code);
  const bin = m.toBytes();
  assert.ok(WebAssembly.validate(bin));
  const e = new WebAssembly.Instance(new WebAssembly.Module(bin), {}).exports as Record<string, (n?: number) => bigint | number>;
  assert.equal(e.min!(), -(1n << 63n));
  assert.equal(e.big!(), 0x123456789abcdefn - 2n);
  assert.equal(e.count!(14), 42);
  // A body with a wrong size does not validate.
  const bad = m.toBytes();
  bad[bad.length - 1] = OP.i32add;
  assert.equal(WebAssembly.validate(bad), false);
});
