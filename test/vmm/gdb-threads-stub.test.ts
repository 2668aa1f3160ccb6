// GDB's thread packets at the stub (vmm/gdb/stub.ts) against a fake machine of two vCPUs
// (test/vmm/gdb-fuzz.ts's FakeTarget): the thread list, Hg/Hc selecting whose registers are read
// and who steps, qThreadExtraInfo, the thread-alive packet, vCont naming a thread, and bad thread
// ids answered with E01, never an exception. Then the bounds of ChannelTarget (the stub's side of
// the vCPU threads' debug channels): a vCPU that never answers a request, or never stops when
// asked, costs a bounded wait, a log line and an error, not a hung stub.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChannelTarget } from '../../src/vmm/gdb/channel-target.js';
import { DebugChannel, WORD, newDebugChannel } from '../../src/vmm/gdb/channel.js';
import { PacketReader, encodePacket } from '../../src/vmm/gdb/packet.js';
import { REGISTERS_SIZE } from '../../src/vmm/gdb/registers.js';
import { GdbStub } from '../../src/vmm/gdb/stub.js';
import type { ResumeAction } from '../../src/vmm/gdb/target.js';
import { FakeTarget, Prng } from './gdb-fuzz.js';

/** A stub on a two-vCPU fake; ask() sends one command and resolves with its reply's data. */
function session() {
  const target = new FakeTarget(new Prng(7));
  const resumes: [number, ResumeAction][][] = [];
  const resume = target.resume.bind(target);
  target.resume = (actions, debug) => {
    resumes.push([...actions]);
    return resume(actions, debug);
  };
  const reader = new PacketReader();
  const replies: string[] = [];
  const log: string[] = [];
  const stub = new GdbStub(target, (b) => {
    for (const m of reader.feed(b)) if (m.kind === 'packet') replies.push(m.data);
  }, { log: (m) => log.push(m) });
  const ask = async (data: string): Promise<string> => {
    const before = replies.length;
    stub.feed(encodePacket(data));
    await stub.idle();
    assert.equal(replies.length, before + 1, `one reply to ${data}`);
    return replies.at(-1)!;
  };
  return { ask, resumes, log, target };
}

const text = (hex: string) => Buffer.from(hex, 'hex').toString();

test('gdb stub threads: list, Hg selects whose registers, qThreadExtraInfo, thread alive', async () => {
  const { ask, log } = session();
  assert.equal(await ask('qfThreadInfo'), 'm1,2');
  assert.equal(await ask('qsThreadInfo'), 'l');
  assert.equal(await ask('T1'), 'OK');
  assert.equal(await ask('T2'), 'OK');
  // Thread 2's registers are vCPU 1's: written there, they differ from thread 1's.
  assert.equal(await ask('Hg2'), 'OK');
  assert.equal(await ask(`G${'ab'.repeat(REGISTERS_SIZE)}`), 'OK');
  assert.equal(await ask('g'), 'ab'.repeat(REGISTERS_SIZE));
  assert.equal(await ask('Hg1'), 'OK');
  assert.equal(await ask('g'), '00'.repeat(REGISTERS_SIZE));
  assert.equal(text(await ask('qThreadExtraInfo,1')), 'vCPU 0 (running)');
  assert.equal(text(await ask('qThreadExtraInfo,2')), 'vCPU 1 (wait-for-SIPI)');
  assert.deepEqual(log, []);
});

test('gdb stub threads: bad thread ids are E01 replies, and the selection stays', async () => {
  const { ask, log } = session();
  assert.equal(await ask('Hg2'), 'OK');
  for (const bad of ['Hg3', 'Hgffffffff', 'Hgzz', 'Hc3', 'Hx1', 'T3', 'T0', 'T-1', 'Tzz', 'T', 'qThreadExtraInfo,3', 'qThreadExtraInfo,0', 'qThreadExtraInfo,-1', 'qThreadExtraInfo,zz', 'vCont;s:3', 'vCont;c:zz', 'vCont;s:3;c']) {
    assert.equal(await ask(bad), 'E01', bad);
  }
  assert.equal(await ask(`G${'cd'.repeat(REGISTERS_SIZE)}`), 'OK');
  assert.equal(await ask('Hg1'), 'OK');
  assert.notEqual(await ask('g'), 'cd'.repeat(REGISTERS_SIZE), 'the G went to thread 2, still selected after the bad ones');
  assert.deepEqual(log, [], 'no exception reached the log');
});

test('gdb stub threads: vCont steps the thread it names, the others do as told; Hc picks who an s steps', async () => {
  const { ask, resumes } = session();
  assert.match(await ask('vCont;s:2;c'), /^T05thread:2;$/, 'the stop names the stepped thread');
  assert.deepEqual(resumes.at(-1), [[1, 'step'], [0, 'continue']]);
  assert.match(await ask('vCont;s:2'), /^T05thread:2;$/);
  assert.deepEqual(resumes.at(-1), [[1, 'step']], 'a vCont naming one thread leaves the other stopped');
  assert.equal(await ask('Hc2'), 'OK');
  await ask('s');
  assert.deepEqual(resumes.at(-1), [[1, 'step']], 's steps the Hc thread alone');
  await ask('c');
  assert.deepEqual(resumes.at(-1), [[0, 'continue'], [1, 'continue']], 'c resumes every vCPU');
});

test('gdb stub threads: after a stop, g reads the thread the stop names, an interrupted stop too (GDB sends no Hg for it)', async () => {
  const { ask, target } = session();
  assert.equal(await ask('Hg2'), 'OK');
  assert.equal(await ask(`G${'ab'.repeat(REGISTERS_SIZE)}`), 'OK');
  for (const [stop, reply] of [[{ kind: 'interrupted', vcpu: 1 }, 'T02thread:2;'], [{ kind: 'debug', vcpu: 1, reason: 'step' }, 'T05thread:2;']] as const) {
    assert.equal(await ask('Hg1'), 'OK');
    target.resume = async () => stop;
    assert.equal(await ask('vCont;c'), reply);
    assert.equal(await ask('g'), 'ab'.repeat(REGISTERS_SIZE), `after ${reply}: thread 2's registers`);
  }
});

/** A ChannelTarget over two fresh channels; vCPU 0's kick pauses it and reports the stop (as its agent would), vCPU 1's does nothing. */
function channelTarget(opts: { stopTimeoutMs?: number; replyTimeoutMs?: number }) {
  const buffers = [newDebugChannel(), newDebugChannel()];
  const chans = buffers.map((b) => new DebugChannel(b));
  const log: string[] = [];
  const target = new ChannelTarget(buffers.map((channel, id) => ({
    id, channel,
    kick: () => {
      if (id !== 0) return;
      chans[0]!.store(WORD.STOP_REQ, 0);
      chans[0]!.store(WORD.PAUSED, 1);
      chans[0]!.sendEvent({ kind: 'interrupted', vcpu: 0 });
    },
  })), () => {}, { ...opts, log: (m) => log.push(m) });
  return { target, chans, log };
}

test('gdb channel target: a vCPU that never answers a request times out with an error and a log line', async () => {
  const { target, chans, log } = channelTarget({ replyTimeoutMs: 50 });
  chans[1]!.store(WORD.PAUSED, 1); // paused, and nothing serves its commands
  const r = await target.request(1, { op: 'readRegisters' });
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.error : '', /vCPU 1 did not answer a debug request \(readRegisters\) within 50 ms/);
  assert.equal(log.length, 1, log.join('\n'));
  // The next request waits its own bounded time too (no answer queued behind the lost one forever).
  assert.equal((await target.request(1, { op: 'status' })).ok, false);
  assert.equal((await target.request(5, { op: 'status' })).ok, false, 'no such vCPU');
});

test('gdb channel target: a vCPU that never stops when asked is left running after a bounded wait; the others stop', async () => {
  const { target, chans, log } = channelTarget({ stopTimeoutMs: 50 });
  const e = await target.halt();
  assert.deepEqual(e, { kind: 'interrupted', vcpu: 0 }, 'the stop of the vCPU that did stop');
  assert.equal(chans[0]!.load(WORD.PAUSED), 1);
  assert.match(log.join('\n'), /vCPU 1 did not stop within 50 ms; it runs on/);
  const r = await target.request(1, { op: 'readRegisters' });
  assert.deepEqual(r, { ok: false, error: 'vCPU 1 is running' }, 'its requests fail at once while it runs');
});
