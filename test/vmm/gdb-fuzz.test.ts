// The GDB stub under hostile clients (test/vmm/gdb-fuzz.ts against a fake machine): 10^5 seeded
// random inputs with no exception, every reply well-formed, the reader and the command chain
// within their bounds; and the two bounds on what a client can make the stub hold: commands sent
// without waiting for their replies, and software breakpoints.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodePacket, PacketReader } from '../../src/vmm/gdb/packet.js';
import { GdbStub, MAX_QUEUED, MAX_SW_BREAKS } from '../../src/vmm/gdb/stub.js';
import type { VcpuReply, VcpuRequest } from '../../src/vmm/gdb/target.js';
import { FakeTarget, FUZZ_BOUNDS, Prng, fuzzGdbStub } from './gdb-fuzz.js';

test('gdb stub fuzz: 10^5 random, cut, mis-summed, oversized and well-formed packets; no exception, every reply well-formed, bounded', async () => {
  const r = await fuzzGdbStub(100_000, 0x5eed);
  assert.equal(r.inputs, 100_000);
  assert.equal(r.exceptions, 0, r.firstException);
  assert.equal(r.malformed, 0, r.firstMalformed);
  assert.ok(r.maxBuffered <= FUZZ_BOUNDS.buffered, `the reader held ${r.maxBuffered} bytes`);
  assert.ok(r.maxQueued <= FUZZ_BOUNDS.queued, `${r.maxQueued} commands waited`);
  // The run reached the stub's commands, not only its framing.
  assert.ok(r.replies > 50_000 && r.sessions > 100, JSON.stringify(r));
});

/** Collects what a stub sends, as frames. */
function collector(): { send: (b: Uint8Array) => void; frames: ReturnType<PacketReader['feed']> } {
  const reader = new PacketReader();
  const frames: ReturnType<PacketReader['feed']> = [];
  return { send: (b) => frames.push(...reader.feed(b)), frames };
}

test('gdb stub: commands sent without waiting for replies are held up to MAX_QUEUED, the rest NAKed', async () => {
  const target = new FakeTarget(new Prng(1));
  // The machine answers only when let go: the commands pile up meanwhile.
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const request = target.request.bind(target);
  target.request = async (vcpu: number, req: VcpuRequest): Promise<VcpuReply> => {
    await gate;
    return request(vcpu, req);
  };
  const c = collector();
  const stub = new GdbStub(target, c.send);
  const flood = 10_000;
  stub.feed(Buffer.concat(Array.from({ length: flood }, () => encodePacket('g'))));
  assert.ok(stub.queued <= MAX_QUEUED, `${stub.queued} commands held`);
  release();
  await stub.idle();
  const kinds = (k: string) => c.frames.filter((f) => f.kind === k).length;
  assert.equal(kinds('packet'), MAX_QUEUED, 'a reply for each command held');
  assert.equal(kinds('ack'), MAX_QUEUED);
  assert.equal(kinds('nak'), flood - MAX_QUEUED, 'the others asked again');
  // The session goes on.
  stub.feed(encodePacket('?'));
  await stub.idle();
  assert.deepEqual(c.frames.at(-1), { kind: 'packet', data: 'T02thread:1;' });
});

test('gdb stub: software breakpoints are bounded (MAX_SW_BREAKS), then E1c; removing one makes room', async () => {
  const target = new FakeTarget(new Prng(2));
  const c = collector();
  const stub = new GdbStub(target, c.send);
  const replies = async (cmd: string) => {
    stub.feed(encodePacket(cmd));
    await stub.idle();
    const last = c.frames.at(-1);
    return last?.kind === 'packet' ? last.data : `<${last?.kind}>`;
  };
  for (let k = 0; k < MAX_SW_BREAKS; k++) assert.equal(await replies(`Z0,${(0x100000 + k).toString(16)},1`), 'OK');
  assert.equal(await replies(`Z0,${(0x100000 + MAX_SW_BREAKS).toString(16)},1`), 'E1c');
  assert.equal(target.ram[MAX_SW_BREAKS], 0, 'no INT3 placed past the bound');
  assert.equal(target.ram[0], 0xcc);
  assert.equal(await replies('z0,100000,1'), 'OK');
  assert.equal(target.ram[0], 0);
  assert.equal(await replies(`Z0,${(0x100000 + MAX_SW_BREAKS).toString(16)},1`), 'OK');
});
