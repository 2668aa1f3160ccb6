/**
 * One GDB client's session: the remote protocol's commands (GDB manual, "Remote Protocol") on a
 * DebugTarget, in all-stop mode. vCPU n is thread n + 1. What the stub keeps for the session:
 * the selected threads (Hg, Hc), the software breakpoints it placed (an INT3 written over the
 * first byte, the byte kept to restore it and to show through memory reads), hardware breakpoints
 * and watchpoints (a watched range is split into the aligned 1/2/4/8-byte pieces the debug
 * registers take, four slots in all).
 *
 * Threads: every vCPU, listed from the start (an AP waiting for its start-up IPI too). A stop of
 * one stops all before the reply, which names it (`thread:ID;`); `c` resumes all; `s` steps the
 * Hc thread alone (the stop's thread when none is selected) and `vCont` does what each action
 * says to the threads it names, leaving any it does not name stopped, as QEMU's stub does.
 * Breakpoints and watchpoints are the machine's, given to every vCPU it resumes. A bad thread id
 * is E01.
 *
 * Every input is bounded and checked: a malformed command gets `E..` (or the empty reply GDB
 * reads as "not supported"), never an exception out of here; the machine is only touched through
 * the target's commands, which fail cleanly.
 */
import { DEBUG_SLOTS, type DebugConfig, type WatchAccess, type Watchpoint } from '../../nvmm/debug.js';
import { MAX_PACKET, PacketReader, binaryBytes, encodePacket, fromHex, parseHex64, toHex } from './packet.js';
import { targetXml } from './registers.js';
import type { DebugTarget, ResumeAction, StopEvent, VcpuReply } from './target.js';
import { MAX_MEMORY_REQUEST } from './vcpu-agent.js';

/** Error replies (the numbers are ours; GDB shows them). */
const E_BAD = 'E01'; // malformed command
const E_FAULT = 'E0e'; // memory not accessible (EFAULT)
const E_NOSPC = 'E1c'; // no debug slot left (ENOSPC)
const E_TARGET = 'E05'; // the target refused (EIO)

/** Signals in stop replies. */
const SIGINT = 2;
const SIGTRAP = 5;

const INT3 = 0xcc;
/** Most instructions `monitor trace cpu N` steps. */
const MAX_TRACE = 10000;
/**
 * Most commands received and not yet answered. A client waits for each reply before its next
 * command (all-stop), so more is a flood: a packet past this is dropped (and NAKed, so that a
 * client acknowledging packets sends it again), and the host holds no more of it.
 */
export const MAX_QUEUED = 16;
/** Most software breakpoints placed at once (each holds a byte and is checked at every memory read). */
export const MAX_SW_BREAKS = 4096;

interface Breakpoint {
  /** The byte the INT3 replaced. */
  saved: number;
}

interface GdbWatch {
  addr: bigint;
  len: number;
  access: WatchAccess;
  /** The aligned pieces the backend watches. */
  pieces: Watchpoint[];
}

export interface StubOptions {
  /** Notes for the VMM's log (a client's bad packets...). */
  log?: (message: string) => void;
}

export class GdbStub {
  private readonly target: DebugTarget;
  private readonly send: (bytes: Uint8Array) => void;
  private readonly log: (message: string) => void;
  private readonly reader = new PacketReader();
  private noAck = false;
  private lastSent: Uint8Array | null = null;
  /** Commands are handled one after the other; this is the chain. */
  private queue: Promise<void>;
  /** Commands on the chain not yet answered (at most MAX_QUEUED). */
  private waiting = 0;
  private running: Promise<void> | null = null;
  private stop: StopEvent | null = null;
  private closed = false;
  /** Selected thread for registers and memory (Hg) and for resuming (Hc); 0: any, -1: all. */
  private gThread = 0;
  private cThread = -1;
  private readonly swBreaks = new Map<bigint, Breakpoint>();
  private readonly hwBreaks = new Set<bigint>();
  private readonly watches = new Map<string, GdbWatch>();

  constructor(target: DebugTarget, send: (bytes: Uint8Array) => void, opts: StubOptions = {}) {
    this.target = target;
    this.send = send;
    this.log = opts.log ?? (() => {});
    // A client finds the machine stopped (GDB's all-stop attach).
    this.queue = target.halt().then((e) => void (this.stop = e), () => {});
  }

  /** Bytes from the client. */
  feed(bytes: Uint8Array): void {
    for (const m of this.reader.feed(bytes)) {
      switch (m.kind) {
        case 'interrupt':
          if (this.running) this.target.interrupt();
          break;
        case 'ack':
          break;
        case 'nak':
          if (!this.noAck && this.lastSent) this.send(this.lastSent);
          break;
        case 'bad':
          this.log(`gdb: bad packet from the client (${m.why})`);
          if (!this.noAck) this.send(Uint8Array.of(0x2d));
          break;
        case 'packet':
          if (this.waiting >= MAX_QUEUED) {
            this.log(`gdb: dropped a packet: ${MAX_QUEUED} commands wait for their replies`);
            if (!this.noAck) this.send(Uint8Array.of(0x2d));
            break;
          }
          if (!this.noAck) this.send(Uint8Array.of(0x2b));
          this.waiting++;
          this.queue = this.queue.then(() => this.handle(m.data)).catch((e: unknown) => {
            this.log(`gdb: ${e instanceof Error ? e.message : String(e)}`);
            this.reply(E_TARGET);
          }).finally(() => void this.waiting--);
          break;
      }
    }
  }

  /** The client went away: whatever it left placed is removed, and the machine runs on. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.running) this.target.interrupt();
    await this.queue;
    if (this.running) await this.running;
    await this.removeAll();
    await this.target.detach();
  }

  /** Commands received and not yet answered. */
  get queued(): number {
    return this.waiting;
  }

  /** Bytes of a partial packet held. */
  get buffered(): number {
    return this.reader.buffered;
  }

  /** The session is over (the client detached or killed the machine, or close()). */
  get ended(): boolean {
    return this.closed;
  }

  /** Resolves once every command received so far is handled (and a resume it started has stopped). */
  async idle(): Promise<void> {
    await this.queue;
    if (this.running) await this.running;
  }

  private reply(data: string): void {
    if (this.closed) return;
    const p = encodePacket(data);
    this.lastSent = p;
    this.send(p);
  }

  private threadOf(vcpu: number): string {
    return (vcpu + 1).toString(16);
  }

  /** The vCPU a thread id names (`0` and `-1`: the first), or undefined. */
  private vcpuOf(thread: number): number | undefined {
    const ids = this.target.vcpus();
    if (thread <= 0) return ids[0];
    return ids.includes(thread - 1) ? thread - 1 : undefined;
  }

  private get gVcpu(): number {
    return this.vcpuOf(this.gThread) ?? this.target.vcpus()[0]!;
  }

  private async handle(data: string): Promise<void> {
    if (this.closed) return;
    if (this.running) {
      // All-stop: nothing but the interrupt byte is expected while the machine runs.
      this.reply(E_TARGET);
      return;
    }
    const c = data[0] ?? '';
    const rest = data.slice(1);
    switch (c) {
      case '?': return this.reply(this.stopReply());
      case 'g': return this.readRegisters();
      case 'G': return this.writeRegisters(rest);
      case 'p': return this.readRegister(rest);
      case 'P': return this.writeRegister(rest);
      case 'm': return this.readMemory(rest);
      case 'M': return this.writeMemory(rest, false);
      case 'X': return this.writeMemory(rest, true);
      case 'Z': return this.breakpoint(rest, true);
      case 'z': return this.breakpoint(rest, false);
      case 'c': return this.resumeAll('continue', rest);
      case 's': return this.resumeAll('step', rest);
      case 'C': return this.resumeAll('continue', rest.replace(/^[0-9a-fA-F]+;?/, ''));
      case 'S': return this.resumeAll('step', rest.replace(/^[0-9a-fA-F]+;?/, ''));
      case 'H': return this.setThread(rest);
      case 'T': {
        const t = parseThread(rest);
        return this.reply(t !== undefined && t > 0 && this.vcpuOf(t) !== undefined ? 'OK' : E_BAD);
      }
      case 'D': return this.detach();
      case 'k': return this.kill();
      case 'q': return this.query(data);
      case 'Q':
        if (data !== 'QStartNoAckMode') return this.reply('');
        // The OK is the last packet either side acknowledges.
        this.reply('OK');
        this.noAck = true;
        return;
      case 'v': return this.vPacket(data);
      default: return this.reply('');
    }
  }

  private async query(data: string): Promise<void> {
    if (data.startsWith('qSupported')) {
      return this.reply(`PacketSize=${MAX_PACKET.toString(16)};qXfer:features:read+;swbreak+;hwbreak+;vContSupported+;QStartNoAckMode+`);
    }
    if (data.startsWith('qXfer:features:read:')) return this.xferFeatures(data.slice('qXfer:features:read:'.length));
    if (data === 'qfThreadInfo') return this.reply(`m${this.target.vcpus().map((v) => this.threadOf(v)).join(',')}`);
    if (data === 'qsThreadInfo') return this.reply('l');
    if (data === 'qC') return this.reply(`QC${this.threadOf(this.stopVcpu())}`);
    if (data === 'qAttached') return this.reply('1');
    if (data === 'qOffsets') return this.reply('Text=0;Data=0;Bss=0');
    if (data.startsWith('qThreadExtraInfo,')) {
      const t = parseThread(data.slice('qThreadExtraInfo,'.length));
      const v = t !== undefined && t > 0 ? this.vcpuOf(t) : undefined;
      if (v === undefined) return this.reply(E_BAD);
      // What it does, when its thread answers (it always should: every vCPU is stopped).
      const r = await this.ask({ op: 'status' }, v);
      return this.reply(toHex(Buffer.from(r.ok && r.text ? `vCPU ${v} (${r.text})` : `vCPU ${v}`)));
    }
    if (data.startsWith('qRcmd,')) return this.monitor(data.slice('qRcmd,'.length));
    return this.reply('');
  }

  private xferFeatures(args: string): void {
    const m = /^([^:]+):([0-9a-fA-F]{1,8}),([0-9a-fA-F]{1,8})$/.exec(args);
    if (!m) return this.reply(E_BAD);
    if (m[1] !== 'target.xml') return this.reply('E00');
    const doc = targetXml();
    const off = parseInt(m[2]!, 16), len = Math.min(parseInt(m[3]!, 16), MAX_PACKET - 16);
    if (off > doc.length) return this.reply(E_BAD);
    const piece = doc.slice(off, off + len);
    return this.reply(`${off + len >= doc.length ? 'l' : 'm'}${piece}`);
  }

  private async vPacket(data: string): Promise<void> {
    if (data === 'vCont?') return this.reply('vCont;c;C;s;S');
    if (data.startsWith('vCont;')) return this.vCont(data.slice('vCont;'.length));
    if (data === 'vMustReplyEmpty') return this.reply('');
    return this.reply('');
  }

  private setThread(rest: string): void {
    const op = rest[0];
    const t = parseThread(rest.slice(1));
    if ((op !== 'g' && op !== 'c') || t === undefined || (t > 0 && this.vcpuOf(t) === undefined)) return this.reply(E_BAD);
    if (op === 'g') this.gThread = t;
    else this.cThread = t;
    this.reply('OK');
  }

  // ---- registers and memory ----

  private async ask(req: Parameters<DebugTarget['request']>[1], vcpu = this.gVcpu): Promise<VcpuReply> {
    return this.target.request(vcpu, req);
  }

  private async readRegisters(): Promise<void> {
    const r = await this.ask({ op: 'readRegisters' });
    this.reply(r.ok && r.bytes ? toHex(r.bytes) : E_TARGET);
  }

  private async writeRegisters(hex: string): Promise<void> {
    const bytes = fromHex(hex);
    if (!bytes) return this.reply(E_BAD);
    const r = await this.ask({ op: 'writeRegisters', bytes });
    this.reply(r.ok ? 'OK' : E_BAD);
  }

  private async readRegister(arg: string): Promise<void> {
    const n = parseHexInt(arg);
    if (n === undefined) return this.reply(E_BAD);
    const r = await this.ask({ op: 'readRegister', n });
    this.reply(r.ok && r.bytes ? toHex(r.bytes) : E_BAD);
  }

  private async writeRegister(arg: string): Promise<void> {
    const m = /^([0-9a-fA-F]{1,4})=([0-9a-fA-F]*)$/.exec(arg);
    const bytes = m ? fromHex(m[2]!) : null;
    if (!m || !bytes) return this.reply(E_BAD);
    const r = await this.ask({ op: 'writeRegister', n: parseInt(m[1]!, 16), bytes });
    this.reply(r.ok ? 'OK' : E_BAD);
  }

  /** `addr,len` with both in hex; len bounded. */
  private parseRange(s: string): { addr: bigint; len: number } | null {
    const m = /^([0-9a-fA-F]{1,16}),([0-9a-fA-F]{1,8})$/.exec(s);
    if (!m) return null;
    return { addr: parseHex64(m[1]!)!, len: parseInt(m[2]!, 16) };
  }

  private async readMemory(arg: string): Promise<void> {
    const r = this.parseRange(arg);
    if (!r) return this.reply(E_BAD);
    const len = Math.min(r.len, MAX_MEMORY_REQUEST); // a short read is allowed
    const got = await this.ask({ op: 'readMemory', addr: r.addr, len });
    if (!got.ok || !got.bytes) return this.reply(E_FAULT);
    this.reply(toHex(this.maskBreakpoints(r.addr, got.bytes)));
  }

  /** Memory as the guest had it: the bytes under the INT3s placed show through. */
  private maskBreakpoints(addr: bigint, bytes: Uint8Array): Uint8Array {
    const out = bytes.slice();
    for (const [a, bp] of this.swBreaks) {
      const off = a - addr;
      if (off >= 0n && off < BigInt(out.length)) out[Number(off)] = bp.saved;
    }
    return out;
  }

  private async writeMemory(arg: string, binary: boolean): Promise<void> {
    const colon = arg.indexOf(':');
    const r = colon < 0 ? null : this.parseRange(arg.slice(0, colon));
    const body = arg.slice(colon + 1);
    const bytes = r === null ? null : binary ? binaryBytes(body) : fromHex(body);
    if (!r || !bytes || bytes.length !== r.len || r.len > MAX_MEMORY_REQUEST) return this.reply(E_BAD);
    if (r.len === 0) return this.reply('OK');
    // Where an INT3 of ours sits, the new byte is what it will restore; the INT3 stays.
    const data = bytes.slice();
    for (const [a, bp] of this.swBreaks) {
      const off = a - r.addr;
      if (off >= 0n && off < BigInt(data.length)) {
        bp.saved = data[Number(off)]!;
        data[Number(off)] = INT3;
      }
    }
    const w = await this.ask({ op: 'writeMemory', addr: r.addr, bytes: data });
    this.reply(w.ok ? 'OK' : E_FAULT);
  }

  // ---- breakpoints and watchpoints ----

  private slotsUsed(): number {
    let n = this.hwBreaks.size;
    for (const w of this.watches.values()) n += w.pieces.length;
    return n;
  }

  private async breakpoint(arg: string, insert: boolean): Promise<void> {
    const m = /^([0-4]),([0-9a-fA-F]{1,16}),([0-9a-fA-F]{1,4})(;.*)?$/.exec(arg);
    if (!m) return this.reply(E_BAD);
    const type = Number(m[1]);
    const addr = parseHex64(m[2]!)!;
    const kind = parseInt(m[3]!, 16);
    switch (type) {
      case 0: return this.reply(insert ? await this.insertInt3(addr) : await this.removeInt3(addr));
      case 1:
        if (!insert) {
          this.hwBreaks.delete(addr);
          return this.reply('OK');
        }
        if (this.hwBreaks.has(addr)) return this.reply('OK');
        if (this.slotsUsed() + 1 > DEBUG_SLOTS) return this.reply(E_NOSPC);
        this.hwBreaks.add(addr);
        return this.reply('OK');
      default: {
        const access: WatchAccess = type === 2 ? 'write' : type === 3 ? 'read' : 'access';
        const key = `${type}:${addr.toString(16)}:${kind}`;
        if (!insert) {
          this.watches.delete(key);
          return this.reply('OK');
        }
        if (this.watches.has(key)) return this.reply('OK');
        const pieces = alignedPieces(addr, kind).map((p) => ({ ...p, access }));
        if (kind === 0 || this.slotsUsed() + pieces.length > DEBUG_SLOTS) return this.reply(E_NOSPC);
        this.watches.set(key, { addr, len: kind, access, pieces });
        return this.reply('OK');
      }
    }
  }

  private async insertInt3(addr: bigint): Promise<string> {
    if (this.swBreaks.has(addr)) return 'OK';
    if (this.swBreaks.size >= MAX_SW_BREAKS) return E_NOSPC;
    const r = await this.ask({ op: 'readMemory', addr, len: 1 });
    if (!r.ok || !r.bytes || r.bytes.length !== 1) return E_FAULT;
    const w = await this.ask({ op: 'writeMemory', addr, bytes: Uint8Array.of(INT3) });
    if (!w.ok) return E_FAULT;
    this.swBreaks.set(addr, { saved: r.bytes[0]! });
    return 'OK';
  }

  private async removeInt3(addr: bigint): Promise<string> {
    const bp = this.swBreaks.get(addr);
    if (!bp) return 'OK';
    this.swBreaks.delete(addr);
    const w = await this.ask({ op: 'writeMemory', addr, bytes: Uint8Array.of(bp.saved) });
    return w.ok ? 'OK' : E_FAULT;
  }

  private async removeAll(): Promise<void> {
    for (const addr of [...this.swBreaks.keys()]) await this.removeInt3(addr);
    this.hwBreaks.clear();
    this.watches.clear();
  }

  private debugConfig(): DebugConfig {
    return {
      singleStep: false,
      softwareBreakpoints: [...this.swBreaks.keys()],
      hardwareBreakpoints: [...this.hwBreaks],
      watchpoints: [...this.watches.values()].flatMap((w) => w.pieces),
    };
  }

  // ---- running ----

  /** `c [addr]` / `s [addr]`: the Hc thread (all: the first) does `action`, the others continue. */
  private async resumeAll(action: ResumeAction, addrArg: string): Promise<void> {
    const vcpus = this.target.vcpus();
    const main = this.cThread > 0 ? this.vcpuOf(this.cThread) ?? vcpus[0]! : this.stopVcpu();
    if (addrArg.length) {
      const addr = parseHex64(addrArg);
      if (addr === null) return this.reply(E_BAD);
      const regs = await this.ask({ op: 'readRegister', n: RIP_REGNUM }, main);
      if (!regs.ok) return this.reply(E_TARGET);
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, addr, true);
      const w = await this.ask({ op: 'writeRegister', n: RIP_REGNUM, bytes: b }, main);
      if (!w.ok) return this.reply(E_TARGET);
    }
    const actions = new Map<number, ResumeAction>();
    // A step moves the one vCPU (the others stay stopped, as GDB's step expects of the thread it names).
    if (action === 'step') actions.set(main, 'step');
    else for (const v of vcpus) actions.set(v, 'continue');
    this.startRunning(actions);
  }

  /** `vCont;action[:thread];...`: the first action naming a thread (or none) applies to it. */
  private vCont(args: string): void {
    const vcpus = this.target.vcpus();
    const actions = new Map<number, ResumeAction>();
    for (const part of args.split(';')) {
      const m = /^([cCsS])([0-9a-fA-F]{1,2})?(?::(-1|[0-9a-fA-F]{1,8}))?$/.exec(part);
      if (!m) return this.reply(E_BAD);
      const action: ResumeAction = m[1]!.toLowerCase() === 's' ? 'step' : 'continue';
      const targets = m[3] === undefined || m[3] === '-1' ? vcpus : [this.vcpuOf(parseInt(m[3], 16))];
      for (const v of targets) {
        if (v === undefined) return this.reply(E_BAD);
        if (!actions.has(v)) actions.set(v, action);
      }
    }
    if (actions.size === 0) return this.reply(E_BAD);
    this.startRunning(actions);
  }

  /** Resumes; the stop reply goes out when the machine stops (an interrupt byte may come first). */
  private startRunning(actions: Map<number, ResumeAction>): void {
    this.running = this.target.resume(actions, this.debugConfig()).then(
      (e) => {
        this.stop = e;
        this.running = null;
        this.reply(this.stopReply());
      },
      (err: unknown) => {
        this.running = null;
        this.log(`gdb: resume failed: ${err instanceof Error ? err.message : String(err)}`);
        this.reply(E_TARGET);
      },
    );
  }

  private stopVcpu(): number {
    const e = this.stop;
    return e && e.kind !== 'ended' ? e.vcpu : this.target.vcpus()[0]!;
  }

  /** The T (or W) packet for the last stop. */
  private stopReply(): string {
    const e = this.stop;
    if (!e) return `S${hex2(SIGTRAP)}`;
    if (e.kind === 'ended') return `W${hex2(e.status & 0xff)}`;
    const thread = `thread:${this.threadOf(e.vcpu)};`;
    // GDB takes the thread a stop names as the one its next register reads (g, p) address,
    // without an Hg: so is it here, whatever stopped the machine.
    this.gThread = e.vcpu + 1;
    if (e.kind === 'interrupted') return `T${hex2(SIGINT)}${thread}`;
    switch (e.reason) {
      case 'step': return `T${hex2(SIGTRAP)}${thread}`;
      case 'swbreak': return `T${hex2(SIGTRAP)}${thread}swbreak:;`;
      case 'hwbreak': return `T${hex2(SIGTRAP)}${thread}hwbreak:;`;
      case 'watch': {
        const w = this.watchOf(e.watchpoint);
        const name = w?.access === 'read' ? 'rwatch' : w?.access === 'access' ? 'awatch' : 'watch';
        return `T${hex2(SIGTRAP)}${thread}${name}:${(w?.addr ?? e.watchpoint?.addr ?? 0n).toString(16)};`;
      }
    }
  }

  /** The client's watchpoint a backend piece belongs to. */
  private watchOf(piece: Watchpoint | undefined): GdbWatch | undefined {
    if (!piece) return undefined;
    for (const w of this.watches.values()) if (w.pieces.some((p) => p.addr === piece.addr && p.len === piece.len)) return w;
    return undefined;
  }

  private async detach(): Promise<void> {
    await this.removeAll();
    await this.target.detach();
    this.reply('OK');
    this.closed = true;
  }

  private kill(): void {
    this.closed = true;
    this.target.kill();
  }

  // ---- monitor ----

  private async monitor(hex: string): Promise<void> {
    const bytes = fromHex(hex);
    if (!bytes) return this.reply(E_BAD);
    const command = Buffer.from(bytes).toString('utf8').trim();
    const trace = /^trace cpu (\d{1,6})$/.exec(command);
    if (trace) return this.traceCpu(Number(trace[1]));
    if (command === 'help') return this.output('monitor commands: info registers, trace cpu N (step N instructions, printing each)\n');
    const r = await this.ask({ op: 'monitor', command });
    if (!r.ok) return this.output(`${r.error}\n`);
    return this.output(r.text ?? '');
  }

  /** Monitor output: `O` packets of console text, then OK. */
  private output(text: string): void {
    const chunk = MAX_PACKET / 2 - 16;
    const hex = toHex(Buffer.from(text, 'utf8'));
    for (let i = 0; i < hex.length; i += chunk) this.reply(`O${hex.slice(i, i + chunk)}`);
    this.reply('OK');
  }

  /** `monitor trace cpu N`: N single steps of the Hg thread's vCPU, each instruction printed before it runs. */
  private async traceCpu(n: number): Promise<void> {
    if (n > MAX_TRACE) return this.output(`trace cpu: at most ${MAX_TRACE} instructions\n`);
    const vcpu = this.gVcpu;
    const lines: string[] = [];
    for (let k = 0; k < n; k++) {
      const d = await this.ask({ op: 'describe' }, vcpu);
      lines.push(d.ok ? d.text ?? '' : d.error);
      const e = await this.target.resume(new Map([[vcpu, 'step']]), this.debugConfig());
      this.stop = e;
      if (e.kind !== 'debug' || e.reason !== 'step') {
        lines.push(`(stopped: ${e.kind === 'debug' ? e.reason : e.kind})`);
        break;
      }
    }
    this.output(`${lines.join('\n')}\n`);
  }
}

/** `rip`'s number in registers.ts's order. */
const RIP_REGNUM = 16;

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function parseHexInt(s: string): number | undefined {
  return /^[0-9a-fA-F]{1,8}$/.test(s) ? parseInt(s, 16) : undefined;
}

/** A thread id: hex, `0` (any) or `-1` (all). */
function parseThread(s: string): number | undefined {
  if (s === '-1') return -1;
  return parseHexInt(s);
}

/** [addr, addr+len) as the aligned 1/2/4/8-byte pieces x86 debug registers watch. */
export function alignedPieces(addr: bigint, len: number): { addr: bigint; len: number }[] {
  const out: { addr: bigint; len: number }[] = [];
  let a = addr;
  let left = BigInt(len);
  while (left > 0n && out.length <= DEBUG_SLOTS) {
    let size = 8n;
    while (size > 1n && (a % size !== 0n || size > left)) size >>= 1n;
    out.push({ addr: a, len: Number(size) });
    a += size;
    left -= size;
  }
  return out;
}
