// The GDB remote protocol's framing (vmm/gdb/packet.ts): checksums, escapes, run lengths,
// acknowledgements, the interrupt byte, and bounds on what a client can make the stub hold.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_PACKET, PacketReader, encodePacket } from '../../src/vmm/gdb/packet.js';
import { alignedPieces } from '../../src/vmm/gdb/stub.js';
import { REGISTERS, REGISTERS_SIZE, abridgedTag, fullTagWord, targetXml } from '../../src/vmm/gdb/registers.js';

const bytes = (s: string) => Uint8Array.from(Buffer.from(s, 'latin1'));
const feed = (s: string) => new PacketReader().feed(bytes(s));

test('gdb packets: checksum, acks, interrupt, noise between packets', () => {
  assert.deepEqual(feed('$g#67'), [{ kind: 'packet', data: 'g' }]);
  assert.deepEqual(feed('+-\x03'), [{ kind: 'ack' }, { kind: 'nak' }, { kind: 'interrupt' }]);
  assert.deepEqual(feed('junk$?#3f'), [{ kind: 'packet', data: '?' }]);
  assert.equal(feed('$g#68')[0]!.kind, 'bad', 'wrong checksum');
  assert.equal(feed('$g#zz')[0]!.kind, 'bad', 'checksum not hex');
  assert.deepEqual(feed('$m0,4#'), [], 'incomplete: nothing yet');
  // Split anywhere.
  const r = new PacketReader();
  const all = [...'$qSupported#37'].flatMap((ch) => r.feed(bytes(ch)));
  assert.deepEqual(all, [{ kind: 'packet', data: 'qSupported' }]);
});

test('gdb packets: escapes and run lengths are undone; a reply escapes what it must', () => {
  // '}' then 0x03 ^ 0x20: an escaped '#'; X packets carry such bytes.
  const payload = 'X0,1:}\x03';
  const sum = [...payload].reduce((a, c) => (a + c.charCodeAt(0)) & 0xff, 0).toString(16).padStart(2, '0');
  assert.deepEqual(feed(`$${payload}#${sum}`), [{ kind: 'packet', data: 'X0,1:#' }]);
  // '0* ' is '0' and 3 more (' ' is 32 = 29 + 3).
  const rle = '0* ';
  const rsum = [...rle].reduce((a, c) => (a + c.charCodeAt(0)) & 0xff, 0).toString(16).padStart(2, '0');
  assert.deepEqual(feed(`$${rle}#${rsum}`), [{ kind: 'packet', data: '0000' }]);
  const enc = Buffer.from(encodePacket('a$b#c}d*e')).toString('latin1');
  assert.equal(new PacketReader().feed(bytes(enc))[0]!.kind, 'packet');
  assert.deepEqual(new PacketReader().feed(bytes(enc)), [{ kind: 'packet', data: 'a$b#c}d*e' }]);
});

test('gdb packets: too long, raw or expanded, is refused and nothing more is held', () => {
  const r = new PacketReader();
  const big = `$${'A'.repeat(4 * MAX_PACKET)}#`;
  const sum = (65 * 4 * MAX_PACKET) & 0xff;
  assert.deepEqual(r.feed(bytes(`${big}${sum.toString(16).padStart(2, '0')}`)).map((m) => m.kind), ['bad']);
  assert.deepEqual(r.feed(bytes('$g#67')), [{ kind: 'packet', data: 'g' }], 'the reader goes on');
  // A run length that would expand past the limit.
  const rle = `A${'*~'.repeat(200)}`;
  const rsum = [...rle].reduce((a, c) => (a + c.charCodeAt(0)) & 0xff, 0).toString(16).padStart(2, '0');
  assert.equal(feed(`$${rle}#${rsum}`)[0]!.kind, 'bad');
});

test('gdb registers: target.xml numbers the g packet in order; x87 tags convert both ways', () => {
  const xml = targetXml();
  const regs = [...xml.matchAll(/<reg name="([^"]+)" bitsize="(\d+)"[^>]* regnum="(\d+)"/g)];
  assert.deepEqual(regs.map((m) => m[1]), REGISTERS.map((r) => r.name));
  assert.deepEqual(regs.map((m) => Number(m[3])), REGISTERS.map((_, i) => i));
  assert.equal(regs.reduce((n, m) => n + Number(m[2]) / 8, 0), REGISTERS_SIZE);
  assert.match(xml, /<architecture>i386:x86-64<\/architecture>/);
  for (const f of ['org.gnu.gdb.i386.core', 'org.gnu.gdb.i386.sse', 'org.gnu.gdb.i386.segments']) assert.ok(xml.includes(`<feature name="${f}">`), f);
  // ST0 (physical register 7 with TOP = 7) holds 1.0: valid; the others empty.
  const sts = new Uint8Array(128);
  sts.set([0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f], 0);
  const tag = fullTagWord(0x80, 7 << 11, sts);
  assert.equal(tag, 0x3fff);
  assert.equal(abridgedTag(tag), 0x80);
  assert.equal(fullTagWord(0x80, 7 << 11, new Uint8Array(128)), 0x7fff, 'zero');
});

test('gdb watch ranges split into aligned debug-register pieces', () => {
  assert.deepEqual(alignedPieces(0x1000n, 8), [{ addr: 0x1000n, len: 8 }]);
  assert.deepEqual(alignedPieces(0x1003n, 4), [{ addr: 0x1003n, len: 1 }, { addr: 0x1004n, len: 2 }, { addr: 0x1006n, len: 1 }]);
  assert.deepEqual(alignedPieces(0x1000n, 16), [{ addr: 0x1000n, len: 8 }, { addr: 0x1008n, len: 8 }]);
  assert.ok(alignedPieces(0x1001n, 1 << 20).length <= 5, 'bounded: past the slots it stops counting');
});
