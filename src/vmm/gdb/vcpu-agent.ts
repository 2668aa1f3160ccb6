/**
 * The debugger's side in a vCPU's own thread. The thread's run loop calls it at two places:
 * atStart() before the first run (the machine may start paused), and onExit() after each run;
 * a loop that also waits outside run() (an application processor waiting for its start-up IPI,
 * or halted) calls pauseIfAsked() where it already wakes to look at its messages.
 * A `debug` exit, or a `stopped` one the debugger asked for, pauses the vCPU here: the agent
 * reports the stop and serves the debugger's commands (registers, memory, monitor) until one
 * resumes it, in this thread, with the vCPU's own state API, so nothing of the vCPU crosses
 * threads. Memory is the guest's virtual memory through the vCPU's page tables (Vcpu.gvaToGpa),
 * RAM only: an address that does not translate or is not RAM is an error reply.
 */
import { TsvmmError } from '../../common/errors.js';
import { NO_DEBUG, type DebugConfig } from '../../nvmm/debug.js';
import type { VcpuRunState } from '../../nvmm/backend.js';
import type { VcpuExit } from '../../nvmm/exit.js';
import type { Vcpu } from '../../nvmm/machine.js';
import { CR, GPR, MSR, SEG, STATE } from '../../nvmm/state.js';
import { disasmOne } from '../../x86/disasm.js';
import { DebugChannel, WORD } from './channel.js';
import { REGISTER_STATE, oneRegisterBytes, registerBytes, setOneRegister, setRegisterBytes } from './registers.js';
import type { StopEvent, VcpuReply, VcpuRequest } from './target.js';

/**
 * What the stub sends a paused vCPU: a request, or the end of the pause. The board's own line to
 * an application processor (a snapshot's) sends `save` (the vCPU's `save` option answers it) and
 * `release` (the end of the pause, the vCPU's debug settings left as they are).
 */
export type AgentCommand = VcpuRequest | { op: 'resume'; step: boolean; debug: DebugConfig } | { op: 'stay' } | { op: 'save' } | { op: 'release' };

const PAGE = 4096n;
/** EFER.LMA: long mode active. */
const EFER_LMA = 1n << 10n;
/** The most bytes one memory request moves (a packet's worth). */
export const MAX_MEMORY_REQUEST = 0x2000;
/** How often a paused vCPU looks whether the machine is asked to end (ms). */
const END_POLL_MS = 100;
/** How often a paused vCPU with `idle` work calls it (ms): the boot vCPU serves the APs' device accesses. */
const IDLE_POLL_MS = 10;

export interface AgentOptions {
  /** True when the host asked the machine to end: a paused vCPU then resumes, so the run loop sees it. */
  ending?: () => boolean;
  /**
   * Work the vCPU's thread must go on doing while it is paused (the boot vCPU's thread serves the
   * other vCPUs' device accesses: one of them may be waiting on it before it can stop).
   */
  idle?: () => void;
  /**
   * What the vCPU is doing (default: running). One waiting for a start-up IPI cannot step (it has
   * no instruction to run until one comes); a halted one steps once an interrupt wakes it.
   */
  runState?: () => VcpuRunState;
  /** Answers `save` (in the vCPU's thread, while it is paused): what a snapshot keeps of the vCPU. */
  save?: () => VcpuReply;
}

export class VcpuAgent {
  private readonly vcpu: Vcpu;
  private readonly channel: DebugChannel;
  private readonly ending: () => boolean;
  private readonly idle: (() => void) | undefined;
  private readonly runState: () => VcpuRunState;
  private readonly save: (() => VcpuReply) | undefined;
  private lastCommand: number;
  private debugOn = false;

  constructor(vcpu: Vcpu, buffer: SharedArrayBuffer, opts: AgentOptions = {}) {
    this.vcpu = vcpu;
    this.channel = new DebugChannel(buffer);
    this.ending = opts.ending ?? (() => false);
    this.idle = opts.idle;
    this.runState = opts.runState ?? (() => 'running');
    this.save = opts.save;
    this.lastCommand = this.channel.load(WORD.CMD_SEQ);
  }

  /** Before the first run: pauses when the machine is to start paused. */
  atStart(): void {
    if (this.channel.load(WORD.WAIT_AT_START)) this.pause({ kind: 'interrupted', vcpu: this.vcpu.id });
  }

  /** After a run: true when the exit was the debugger's (handled here; run again). */
  onExit(exit: VcpuExit): boolean {
    if (exit.kind === 'debug' && this.debugOn) {
      this.pause({ kind: 'debug', vcpu: this.vcpu.id, reason: exit.reason, ...(exit.watchpoint ? { watchpoint: exit.watchpoint } : {}) });
      return true;
    }
    // A stop the debugger asked for; the caller still handles `stopped` (another kick may share it).
    if (exit.kind === 'stopped' && Atomics.exchange(this.channel.words, WORD.STOP_REQ, 0) === 1) {
      this.pause({ kind: 'interrupted', vcpu: this.vcpu.id });
    }
    return false;
  }

  /**
   * Where a loop waits outside run(): pauses here when the debugger asked this vCPU to stop
   * (one atomic load when it did not). True when it paused (the loop looks at its state again).
   */
  pauseIfAsked(): boolean {
    if (Atomics.load(this.channel.words, WORD.STOP_REQ) === 0) return false;
    if (Atomics.exchange(this.channel.words, WORD.STOP_REQ, 0) !== 1) return false;
    this.pause({ kind: 'interrupted', vcpu: this.vcpu.id });
    return true;
  }

  /** Reports `event` and serves commands until one resumes the vCPU (or the machine is ending). */
  private pause(event: StopEvent): void {
    const ch = this.channel;
    Atomics.store(ch.words, WORD.STOP_REQ, 0); // a request that crossed this stop is answered by it
    ch.store(WORD.PAUSED, 1);
    ch.sendEvent(event);
    try {
      for (;;) {
        const seq = ch.load(WORD.CMD_SEQ);
        if (seq === this.lastCommand) {
          if (this.ending()) return;
          this.idle?.();
          Atomics.wait(ch.words, WORD.CMD_SEQ, seq, this.idle ? IDLE_POLL_MS : END_POLL_MS);
          continue;
        }
        this.lastCommand = seq;
        const cmd = ch.command<AgentCommand>();
        if (cmd.op === 'resume') {
          const state = this.runState();
          const r = cmd.step && state === 'wait-for-SIPI'
            ? { ok: false as const, error: `vCPU ${this.vcpu.id} waits for a start-up IPI: it cannot step` }
            : this.setDebug(cmd.step ? { ...cmd.debug, singleStep: true } : cmd.debug);
          // Running before the reply: once the stub has it, a stop it asks for is one to honour.
          if (r.ok) ch.store(WORD.PAUSED, 0);
          ch.sendReply(r);
          if (r.ok) return;
          continue;
        }
        if (cmd.op === 'stay') {
          ch.sendReply({ ok: true });
          continue;
        }
        if (cmd.op === 'release') {
          ch.store(WORD.PAUSED, 0);
          ch.sendReply({ ok: true });
          return;
        }
        if (cmd.op === 'save') {
          ch.sendReply(this.saveReply());
          continue;
        }
        ch.sendReply(this.serve(cmd));
      }
    } finally {
      ch.store(WORD.PAUSED, 0);
    }
  }

  private saveReply(): VcpuReply {
    if (!this.save) return { ok: false, error: `vCPU ${this.vcpu.id} cannot be saved` };
    try {
      return this.save();
    } catch (e) {
      if (e instanceof TsvmmError) return { ok: false, error: `${e.code}: ${e.message}` };
      throw e;
    }
  }

  private setDebug(config: DebugConfig): VcpuReply {
    const off = config === NO_DEBUG || (!config.singleStep && !config.softwareBreakpoints.length && !config.hardwareBreakpoints.length && !config.watchpoints.length);
    try {
      if (this.vcpu.machine.capability.debug) this.vcpu.setDebug(config);
      else if (!off) return { ok: false, error: `the ${this.vcpu.machine.backend.name} backend cannot debug its vCPUs` };
    } catch (e) {
      if (e instanceof TsvmmError) return { ok: false, error: `${e.code}: ${e.message}` };
      throw e;
    }
    this.debugOn = !off;
    return { ok: true };
  }

  /** One request, answered; a TsvmmError (a bad address...) becomes an error reply. */
  serve(req: VcpuRequest): VcpuReply {
    try {
      switch (req.op) {
        case 'readRegisters':
          return { ok: true, bytes: registerBytes(this.vcpu.getState(REGISTER_STATE)) };
        case 'writeRegisters': {
          const s = this.vcpu.getState(REGISTER_STATE);
          const mask = setRegisterBytes(s, req.bytes);
          if (mask < 0) return { ok: false, error: 'register block of a wrong length' };
          if (mask) this.vcpu.setState(mask);
          return { ok: true };
        }
        case 'readRegister': {
          const bytes = oneRegisterBytes(this.vcpu.getState(REGISTER_STATE), req.n);
          return bytes ? { ok: true, bytes } : { ok: false, error: `no register ${req.n}` };
        }
        case 'writeRegister': {
          const mask = setOneRegister(this.vcpu.getState(REGISTER_STATE), req.n, req.bytes);
          if (mask < 0) return { ok: false, error: `no register ${req.n} of ${req.bytes.length} bytes` };
          this.vcpu.setState(mask);
          return { ok: true };
        }
        case 'readMemory':
          return this.readMemory(req.addr, req.len);
        case 'writeMemory':
          return this.writeMemory(req.addr, req.bytes);
        case 'monitor':
          return this.monitor(req.command);
        case 'describe':
          return { ok: true, text: this.describe() };
        case 'status':
          return { ok: true, text: this.runState() };
      }
    } catch (e) {
      if (e instanceof TsvmmError) return { ok: false, error: `${e.code}: ${e.message}` };
      throw e;
    }
  }

  /** The host bytes behind [addr, addr+len) of one page, or null (not translated, not RAM). */
  private pageBytes(addr: bigint, len: number): Uint8Array | null {
    let gpa: number;
    try {
      gpa = this.vcpu.gvaToGpa(addr).gpa;
    } catch (e) {
      if (e instanceof TsvmmError) return null;
      throw e;
    }
    const m = this.vcpu.machine.findMapping(gpa);
    if (!m || gpa + len > m.gpa + m.size) return null;
    const off = m.offset + (gpa - m.gpa);
    return m.memory.bytes.subarray(off, off + len);
  }

  /** Each page's piece of [addr, addr+len), in order, or null for a piece that is not RAM. */
  private pieces(addr: bigint, len: number): ({ bytes: Uint8Array } | null)[] {
    const out: ({ bytes: Uint8Array } | null)[] = [];
    let a = BigInt.asUintN(64, addr);
    let left = len;
    while (left > 0) {
      const n = Math.min(left, Number(PAGE - (a % PAGE)));
      const bytes = this.pageBytes(a, n);
      out.push(bytes ? { bytes } : null);
      a = BigInt.asUintN(64, a + BigInt(n));
      left -= n;
    }
    return out;
  }

  /** Reads up to the first page that is not RAM (GDB takes a short read); none readable is an error. */
  private readMemory(addr: bigint, len: number): VcpuReply {
    if (!Number.isInteger(len) || len < 0 || len > MAX_MEMORY_REQUEST) return { ok: false, error: `read of ${len} bytes` };
    const parts: Uint8Array[] = [];
    for (const p of this.pieces(addr, len)) {
      if (!p) break;
      parts.push(p.bytes.slice());
    }
    if (len > 0 && parts.length === 0) return { ok: false, error: `0x${addr.toString(16)} is not mapped to RAM` };
    return { ok: true, bytes: Uint8Array.from(Buffer.concat(parts)) };
  }

  /** Writes all of it or nothing. */
  private writeMemory(addr: bigint, bytes: Uint8Array): VcpuReply {
    if (bytes.length > MAX_MEMORY_REQUEST) return { ok: false, error: `write of ${bytes.length} bytes` };
    const pieces = this.pieces(addr, bytes.length);
    if (pieces.some((p) => p === null)) return { ok: false, error: `0x${addr.toString(16)}+${bytes.length} is not all mapped to RAM` };
    let at = 0;
    for (const p of pieces) {
      p!.bytes.set(bytes.subarray(at, at + p!.bytes.length));
      at += p!.bytes.length;
    }
    return { ok: true };
  }

  private monitor(command: string): VcpuReply {
    if (command.trim() === 'info registers') return { ok: true, text: this.registerReport() };
    return { ok: false, error: `unknown monitor command '${command.slice(0, 80)}'` };
  }

  /** The instruction at RIP: `address: bytes  disassembly` (the address linear, as breakpoints take it). */
  private describe(): string {
    const s = this.vcpu.getState(STATE.GPRS | STATE.SEGS | STATE.MSRS);
    const cs = s.segs[SEG.CS]!;
    const lma = (s.msrs[MSR.EFER]! & EFER_LMA) !== 0n;
    const mode = lma && cs.attrib.l ? 64 : cs.attrib.def ? 32 : 16;
    const rip = mode === 64 ? s.gprs[GPR.RIP]! : (s.gprs[GPR.RIP]! + cs.base) & 0xffffffffn;
    const r = this.readMemory(rip, 15);
    if (!r.ok || !r.bytes) return `${rip.toString(16).padStart(16, '0')}: (not readable)`;
    const line = disasmOne(r.bytes, 0, r.bytes.length, mode, rip);
    const bytes = [...r.bytes.subarray(0, line.length)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    return `${rip.toString(16).padStart(16, '0')}: ${bytes.padEnd(30)} ${line.text}`;
  }

  /** `monitor info registers`: the state GDB's view leaves out (segment bases and limits, descriptor tables, MSRs). */
  private registerReport(): string {
    const s = this.vcpu.getState(STATE.GPRS | STATE.SEGS | STATE.CRS | STATE.MSRS | STATE.DRS);
    const h = (v: bigint, w = 16) => v.toString(16).padStart(w, '0');
    const g = s.gprs;
    const lines = [
      `vCPU ${this.vcpu.id} (${this.vcpu.machine.backend.name})`,
      `RAX=${h(g[GPR.RAX]!)} RBX=${h(g[GPR.RBX]!)} RCX=${h(g[GPR.RCX]!)} RDX=${h(g[GPR.RDX]!)}`,
      `RSI=${h(g[GPR.RSI]!)} RDI=${h(g[GPR.RDI]!)} RBP=${h(g[GPR.RBP]!)} RSP=${h(g[GPR.RSP]!)}`,
      `R8 =${h(g[GPR.R8]!)} R9 =${h(g[GPR.R9]!)} R10=${h(g[GPR.R10]!)} R11=${h(g[GPR.R11]!)}`,
      `R12=${h(g[GPR.R12]!)} R13=${h(g[GPR.R13]!)} R14=${h(g[GPR.R14]!)} R15=${h(g[GPR.R15]!)}`,
      `RIP=${h(g[GPR.RIP]!)} RFL=${h(g[GPR.RFLAGS]!, 8)}`,
    ];
    const segNames: [string, number][] = [['ES', SEG.ES], ['CS', SEG.CS], ['SS', SEG.SS], ['DS', SEG.DS], ['FS', SEG.FS], ['GS', SEG.GS], ['LDT', SEG.LDT], ['TR', SEG.TR]];
    for (const [name, i] of segNames) {
      const seg = s.segs[i]!;
      const a = seg.attrib;
      lines.push(`${name.padEnd(3)}=${h(BigInt(seg.selector), 4)} ${h(seg.base)} ${h(BigInt(seg.limit >>> 0), 8)} type=${a.type.toString(16)} s=${+a.s} dpl=${a.dpl} p=${+a.p} l=${+a.l} db=${+a.def} g=${+a.g}`);
    }
    lines.push(`GDT=    ${h(s.segs[SEG.GDT]!.base)} ${h(BigInt(s.segs[SEG.GDT]!.limit >>> 0), 8)}`);
    lines.push(`IDT=    ${h(s.segs[SEG.IDT]!.base)} ${h(BigInt(s.segs[SEG.IDT]!.limit >>> 0), 8)}`);
    lines.push(`CR0=${h(s.crs[CR.CR0]!, 8)} CR2=${h(s.crs[CR.CR2]!)} CR3=${h(s.crs[CR.CR3]!)} CR4=${h(s.crs[CR.CR4]!, 8)} CR8=${h(s.crs[CR.CR8]!, 1)}`);
    lines.push(`EFER=${h(s.msrs[MSR.EFER]!)} LSTAR=${h(s.msrs[MSR.LSTAR]!)} STAR=${h(s.msrs[MSR.STAR]!)} KERNELGSBASE=${h(s.msrs[MSR.KERNELGSBASE]!)}`);
    return `${lines.join('\n')}\n`;
  }
}
