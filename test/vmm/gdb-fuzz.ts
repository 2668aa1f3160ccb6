/**
 * A fuzz of the GDB stub (vmm/gdb/stub.ts and its packet reader) against a fake machine: random
 * bytes, packets cut short, bad checksums, packets longer than PacketSize (raw, or once their run
 * lengths expand), and well-formed commands of every kind the stub knows with random arguments
 * (hex of any length, thread ids, binary data), the interrupt byte among them. A seeded PRNG makes
 * a run repeatable. What it checks after each input, once the stub is idle: no exception reached
 * the host (the stub turns one into a log line, which is counted), every frame the stub sent is
 * an ack, a nak or a well-formed packet no longer than PacketSize whose data one of the protocol's
 * reply forms, and what the stub holds (the reader's partial packet, the commands waiting) stays
 * within its bounds. test/vmm/gdb-fuzz.test.ts runs it; bench/gdb-fuzz.ts runs it longer.
 */
import { type DebugConfig } from '../../src/nvmm/debug.js';
import { MAX_PACKET, PacketReader, encodePacket } from '../../src/vmm/gdb/packet.js';
import { REGISTERS, REGISTERS_SIZE } from '../../src/vmm/gdb/registers.js';
import { GdbStub, MAX_QUEUED } from '../../src/vmm/gdb/stub.js';
import type { DebugTarget, ResumeAction, StopEvent, VcpuReply, VcpuRequest } from '../../src/vmm/gdb/target.js';

/** The fake machine's RAM: 64 KiB at 1 MiB; any other address faults. */
const RAM_BASE = 0x100000n;
const RAM_SIZE = 0x10000;

/** xorshift32: the same seed, the same run. */
export class Prng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number {
    let s = this.s;
    s ^= s << 13; s ^= s >>> 17; s ^= s << 5;
    this.s = s >>> 0;
    return this.s;
  }
  /** 0 .. n-1 */
  below(n: number): number {
    return this.next() % n;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)]!;
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }
}

/**
 * A machine of two vCPUs that answers at once: registers and RAM kept here, resumes that stop
 * again (a step, a breakpoint, a watchpoint, an interrupt, now and then the machine's end).
 */
export class FakeTarget implements DebugTarget {
  readonly ram = new Uint8Array(RAM_SIZE);
  private readonly regs = [new Uint8Array(REGISTERS_SIZE), new Uint8Array(REGISTERS_SIZE)];
  private ended: StopEvent | null = null;
  private readonly rng: Prng;
  constructor(rng: Prng) {
    this.rng = rng;
  }

  vcpus(): number[] {
    return [0, 1];
  }

  async halt(): Promise<StopEvent> {
    return this.ended ?? { kind: 'interrupted', vcpu: 0 };
  }

  async resume(actions: ReadonlyMap<number, ResumeAction>, debug: DebugConfig): Promise<StopEvent> {
    if (this.ended) return this.ended;
    const vcpu = [...actions.keys()][0] ?? 0;
    const r = this.rng.below(16);
    if (r === 0) return (this.ended = { kind: 'ended', how: 'poweroff', status: this.rng.below(256) });
    if (r < 4) return { kind: 'interrupted', vcpu };
    if (r < 8 && debug.watchpoints.length) return { kind: 'debug', vcpu, reason: 'watch', watchpoint: this.rng.pick(debug.watchpoints) };
    if (r < 10 && debug.softwareBreakpoints.length) return { kind: 'debug', vcpu, reason: 'swbreak' };
    if (r < 12 && debug.hardwareBreakpoints.length) return { kind: 'debug', vcpu, reason: 'hwbreak' };
    return { kind: 'debug', vcpu, reason: 'step' };
  }

  interrupt(): void {}

  async request(vcpu: number, req: VcpuRequest): Promise<VcpuReply> {
    if (this.ended) return { ok: false, error: 'the machine has ended' };
    const regs = this.regs[vcpu];
    if (!regs) return { ok: false, error: `no vCPU ${vcpu}` };
    switch (req.op) {
      case 'readRegisters': return { ok: true, bytes: regs.slice() };
      case 'writeRegisters':
        if (req.bytes.length !== REGISTERS_SIZE) return { ok: false, error: 'size' };
        regs.set(req.bytes);
        return { ok: true };
      case 'readRegister':
      case 'writeRegister': {
        const def = REGISTERS[req.n];
        if (!def) return { ok: false, error: 'no such register' };
        const off = REGISTERS.slice(0, req.n).reduce((o, d) => o + d.bits / 8, 0);
        if (req.op === 'readRegister') return { ok: true, bytes: regs.slice(off, off + def.bits / 8) };
        if (req.bytes.length !== def.bits / 8) return { ok: false, error: 'size' };
        regs.set(req.bytes, off);
        return { ok: true };
      }
      case 'readMemory':
      case 'writeMemory': {
        const off = req.addr - RAM_BASE;
        const len = req.op === 'readMemory' ? req.len : req.bytes.length;
        if (off < 0n || off + BigInt(len) > BigInt(RAM_SIZE) || len === 0) return { ok: false, error: 'fault' };
        if (req.op === 'readMemory') return { ok: true, bytes: this.ram.slice(Number(off), Number(off) + len) };
        this.ram.set(req.bytes, Number(off));
        return { ok: true };
      }
      case 'monitor': return { ok: true, text: `monitor: ${req.command}\n`.repeat(1 + this.rng.below(4)) };
      case 'describe': return { ok: true, text: 'insn' };
      case 'status': return { ok: true, text: vcpu === 0 ? 'running' : 'wait-for-SIPI' };
    }
  }

  async detach(): Promise<void> {}

  kill(): void {
    this.ended = { kind: 'ended', how: 'killed', status: 0 };
  }
}

/** A reply's data: one of the forms the protocol has for what this stub sends. */
const REPLY_FORMS: readonly RegExp[] = [
  /^$/, /^OK$/, /^E[0-9a-f]{2}$/,
  /^(?:[0-9a-f]{2})+$/, // registers, memory, one register
  /^T[0-9a-f]{2}thread:[0-9a-f]+;(?:(?:swbreak|hwbreak):;|(?:watch|rwatch|awatch):[0-9a-f]+;)?$/,
  /^[SW][0-9a-f]{2}$/,
  /^O(?:[0-9a-f]{2})+$/, // console output
  /^l$/, /^m[0-9a-f]+(?:,[0-9a-f]+)*$/, // thread lists
  /^[lm][\t\n\x20-\x7e]*$/, // target.xml's pieces
  /^QC[0-9a-f]+$/, /^1$/, /^Text=0;Data=0;Bss=0$/, /^PacketSize=[0-9a-f]+;[\w:+;]+$/, /^vCont(?:;[cCsS])+$/,
];

export interface FuzzResult {
  inputs: number;
  /** Exceptions out of the stub's feed or its command chain (must be 0). */
  exceptions: number;
  firstException: string;
  /** Frames the stub sent that are not ack, nak or a well-formed reply (must be 0). */
  malformed: number;
  firstMalformed: string;
  /** The most the stub's reader held of a partial packet, and the most commands waiting. */
  maxBuffered: number;
  maxQueued: number;
  replies: number;
  sessions: number;
}

const hexNum = (rng: Prng): string => {
  const r = rng.below(8);
  if (r === 0) return '';
  if (r === 1) return 'f'.repeat(1 + rng.below(40));
  if (r === 2) return '-1';
  if (r < 5) return (0x100000 + rng.below(RAM_SIZE + 64)).toString(16); // in (or just past) RAM
  return rng.next().toString(16).slice(0, 1 + rng.below(8));
};
/** A thread id: mostly the fake machine's (1, 2), else any (none, 0, -1, past the last, noise). */
const threadId = (rng: Prng): string => (rng.below(2) ? rng.pick(['1', '2', '3', '0', '-1', '']) : hexNum(rng));
const hexBytes = (rng: Prng, n: number): string => Buffer.from(rng.bytes(n)).toString('hex');

/** A well-formed packet's data: a command the stub knows, with random arguments. */
function command(rng: Prng): string {
  const n = () => hexNum(rng);
  const len = () => rng.pick(['0', '1', '4', '8', '10', '100', '2000', '2001', 'ffffffff', n()]);
  switch (rng.below(28)) {
    case 0: return '?';
    case 1: return 'g';
    case 2: return `G${hexBytes(rng, rng.below(3) === 0 ? REGISTERS_SIZE : rng.below(REGISTERS_SIZE + 8))}`;
    case 3: return `p${n()}`;
    case 4: return `P${n()}=${hexBytes(rng, rng.pick([1, 2, 4, 8, 10, 16, 0]))}`;
    case 5: return `m${n()},${len()}`;
    case 6: { const k = rng.below(40); return `M${n()},${rng.below(4) === 0 ? n() : k.toString(16)}:${hexBytes(rng, k)}`; }
    case 7: { const k = rng.below(40); return `X${n()},${k.toString(16)}:${Buffer.from(rng.bytes(k)).toString('latin1')}`; }
    case 8: case 9: return `${rng.pick(['Z', 'z'])}${rng.below(6)},${n()},${rng.pick(['1', '2', '4', '8', '3', '10', '0', n()])}${rng.below(4) === 0 ? ';X1,cc' : ''}`;
    case 10: return `c${rng.below(3) === 0 ? n() : ''}`;
    case 11: return `s${rng.below(3) === 0 ? n() : ''}`;
    case 12: return `${rng.pick(['C', 'S'])}${hexBytes(rng, 1)}${rng.below(2) ? `;${n()}` : ''}`;
    case 13: return `H${rng.pick(['g', 'c', 'x', ''])}${threadId(rng)}`;
    case 14: return `T${threadId(rng)}`;
    case 15: return rng.below(8) === 0 ? 'D' : 'qAttached';
    case 16: return rng.below(16) === 0 ? 'k' : 'qC';
    case 17: return rng.pick(['qSupported:multiprocess+;swbreak+', 'qfThreadInfo', 'qsThreadInfo', 'qOffsets', 'vMustReplyEmpty', 'vCont?', 'QStartNoAckMode', 'QNonStop:1']);
    case 18: return `qXfer:features:read:${rng.pick(['target.xml', 'other.xml', ''])}:${n()},${n()}`;
    case 19: return `qThreadExtraInfo,${threadId(rng)}`;
    case 20: return `qRcmd,${Buffer.from(rng.pick(['info registers', 'help', `trace cpu ${rng.below(30)}`, 'trace cpu 99999', 'nonsense'])).toString('hex')}`;
    case 21: return `qRcmd,${hexBytes(rng, rng.below(20))}${rng.below(2) ? 'z' : ''}`;
    case 22: {
      const parts = Array.from({ length: 1 + rng.below(4) }, () => `${rng.pick(['c', 's', 'C05', 'S0b', 'x', 't'])}${rng.below(2) ? `:${threadId(rng)}` : ''}`);
      return `vCont;${parts.join(';')}`;
    }
    case 23: return `vCont${rng.below(2) ? ';' : ''}`;
    case 24: return `${String.fromCharCode(0x20 + rng.below(95))}${Buffer.from(rng.bytes(rng.below(30))).toString('latin1')}`;
    case 25: return `m${(0x100000 + rng.below(RAM_SIZE)).toString(16)},${rng.below(0x40).toString(16)}`;
    case 26: return `Z0,${(0x100000 + rng.below(RAM_SIZE)).toString(16)},1`;
    default: return `Z${2 + rng.below(3)},${(0x100000 + rng.below(RAM_SIZE)).toString(16)},${rng.pick(['1', '2', '4', '8'])}`;
  }
}

/** One input: bytes as a client could send them. */
function input(rng: Prng): Uint8Array {
  const good = () => encodePacket(command(rng));
  const r = rng.below(100);
  if (r < 55) return good();
  if (r < 63) return rng.bytes(rng.below(64)); // noise
  if (r < 70) { const p = good(); return p.slice(0, rng.below(p.length)); } // cut short
  if (r < 77) { const p = good(); p[p.length - 1] = rng.pick([0x30, 0x7a, p[p.length - 1]! ^ 1]); return p; } // bad checksum
  if (r < 80) { // longer than PacketSize
    const body = Buffer.alloc(MAX_PACKET + 1 + rng.below(64), 0x41);
    // Half of them not ended yet: the reader holds what it may of them meanwhile.
    return Buffer.concat([Buffer.from('$'), body, Buffer.from(rng.below(2) ? '#00' : '')]);
  }
  if (r < 83) { // run lengths that expand past PacketSize (checksum right)
    const data = `m${'0*~'.repeat(1 + rng.below(300))}`;
    const sum = [...data].reduce((a, c) => (a + c.charCodeAt(0)) & 0xff, 0);
    return Buffer.from(`$${data}#${sum.toString(16).padStart(2, '0')}`, 'latin1');
  }
  if (r < 88) return Uint8Array.of(0x03); // the interrupt byte
  if (r < 92) return Buffer.from(rng.pick(['+', '-', '+-+', '$', '#', '}', '$}#7d', '$*#2a', '$a*#8b']), 'latin1');
  // several packets at once, with the interrupt byte in between
  return Buffer.concat(Array.from({ length: 2 + rng.below(4) }, () => (rng.below(4) === 0 ? Uint8Array.of(0x03) : good())));
}

/** `count` inputs, seeded: a new session (stub) whenever the previous one detached or killed. */
export async function fuzzGdbStub(count: number, seed: number): Promise<FuzzResult> {
  const rng = new Prng(seed);
  const res: FuzzResult = { inputs: 0, exceptions: 0, firstException: '', malformed: 0, firstMalformed: '', maxBuffered: 0, maxQueued: 0, replies: 0, sessions: 0 };
  const client = new PacketReader();
  let stub: GdbStub | null = null;
  let target: FakeTarget;
  const exception = (what: string) => {
    if (res.exceptions++ === 0) res.firstException = what;
  };
  const onSend = (bytes: Uint8Array) => {
    if (bytes.length > 2 * MAX_PACKET + 4) malformed(`a frame of ${bytes.length} bytes`);
    for (const m of client.feed(bytes)) {
      if (m.kind === 'bad' || m.kind === 'interrupt') malformed(`${m.kind} ${m.kind === 'bad' ? m.why : ''}`);
      else if (m.kind === 'packet') {
        res.replies++;
        if (m.data.length > MAX_PACKET) malformed(`a reply of ${m.data.length} bytes`);
        else if (!REPLY_FORMS.some((f) => f.test(m.data))) malformed(JSON.stringify(m.data.slice(0, 80)));
      }
    }
  };
  const malformed = (what: string) => {
    if (res.malformed++ === 0) res.firstMalformed = what;
  };
  for (let i = 0; i < count; i++) {
    if (!stub || stub.ended) {
      target = new FakeTarget(rng);
      stub = new GdbStub(target, onSend, {
        log: (m) => {
          // What the stub logs of a client's doing; anything else is an exception it caught.
          if (!/^gdb: (bad packet from the client|dropped a packet)/.test(m)) exception(m);
        },
      });
      res.sessions++;
    }
    try {
      stub.feed(input(rng));
      res.maxQueued = Math.max(res.maxQueued, stub.queued);
      await stub.idle();
    } catch (e) {
      exception(e instanceof Error ? e.stack ?? e.message : String(e));
    }
    res.maxBuffered = Math.max(res.maxBuffered, stub.buffered);
    res.inputs++;
  }
  return res;
}

/** The bounds fuzzGdbStub's result must keep. */
export const FUZZ_BOUNDS = { buffered: MAX_PACKET, queued: MAX_QUEUED };
