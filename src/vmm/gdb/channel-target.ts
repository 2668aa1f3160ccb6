/**
 * A DebugTarget over the vCPUs' debug channels (channel.ts), for the stub's thread: each vCPU runs
 * in its own thread with a VcpuAgent; this side sends commands, waits for replies and stop events
 * without blocking, and keeps the vCPUs all stopped or all running, as GDB's all-stop mode wants:
 * when one stops, the others are asked to stop too before the stop is reported.
 *
 * Every wait on a vCPU's thread is bounded: a vCPU that does not pause within `stopTimeoutMs` of
 * being asked is left running (logged; the stop is reported without it, and its commands fail
 * until it pauses), and a command not answered within `replyTimeoutMs` fails (logged), so a
 * thread that never answers cannot hang the stub.
 */
import { NO_DEBUG, type DebugConfig } from '../../nvmm/debug.js';
import { DebugChannel, WORD } from './channel.js';
import type { AgentCommand } from './vcpu-agent.js';
import type { DebugTarget, ResumeAction, StopEvent, VcpuReply, VcpuRequest } from './target.js';

/** How long a vCPU's thread has to pause once asked, and to answer a command (ms). */
export const STOP_TIMEOUT_MS = 10_000;
export const REPLY_TIMEOUT_MS = 10_000;

export interface ChannelTargetOptions {
  stopTimeoutMs?: number;
  replyTimeoutMs?: number;
  log?: (message: string) => void;
}

export interface TargetVcpu {
  id: number;
  channel: SharedArrayBuffer;
  /** Kicks the vCPU out of its run (nvmm stopVcpu on its handle). */
  kick: () => void;
}

interface Line {
  id: number;
  ch: DebugChannel;
  kick: () => void;
  /** Stop events seen so far (EVENT_SEQ). */
  seenEvents: number;
  /** The chain of this vCPU's commands: one at a time. */
  queue: Promise<unknown>;
}

export class ChannelTarget implements DebugTarget {
  private readonly lines = new Map<number, Line>();
  private readonly onKill: () => void;
  private readonly stopTimeoutMs: number;
  private readonly replyTimeoutMs: number;
  private readonly log: (message: string) => void;
  private ended: StopEvent | null = null;
  private endedWaiters: ((e: StopEvent) => void)[] = [];
  private lastStop: StopEvent | null = null;
  /** A resume is starting vCPUs, and an interrupt came meanwhile: each vCPU started is asked to stop. */
  private resuming = false;
  private interruptPending = false;

  constructor(vcpus: TargetVcpu[], onKill: () => void, opts: ChannelTargetOptions = {}) {
    this.stopTimeoutMs = opts.stopTimeoutMs ?? STOP_TIMEOUT_MS;
    this.replyTimeoutMs = opts.replyTimeoutMs ?? REPLY_TIMEOUT_MS;
    this.log = opts.log ?? (() => {});
    for (const v of vcpus) {
      const ch = new DebugChannel(v.channel);
      this.lines.set(v.id, { id: v.id, ch, kick: v.kick, seenEvents: ch.load(WORD.EVENT_SEQ), queue: Promise.resolve() });
    }
    this.onKill = onKill;
  }

  vcpus(): number[] {
    return [...this.lines.keys()].sort((a, b) => a - b);
  }

  /** The machine has ended: every wait resolves with it, and commands fail from now on. */
  machineEnded(how: string, status = 0): void {
    if (this.ended) return;
    this.ended = { kind: 'ended', how, status };
    for (const w of this.endedWaiters) w(this.ended);
    this.endedWaiters = [];
  }

  private whenEnded(): Promise<StopEvent> {
    return this.ended ? Promise.resolve(this.ended) : new Promise((resolve) => this.endedWaiters.push(resolve));
  }

  private paused(line: Line): boolean {
    return line.ch.load(WORD.PAUSED) === 1;
  }

  /**
   * The next stop event of `line` (one it posted since the last taken counts), or the machine's
   * end; with `timeoutMs`, null when none came by then.
   */
  private async nextEvent(line: Line, timeoutMs?: number): Promise<StopEvent | null> {
    const waitEvent = (async () => {
      await line.ch.changed(WORD.EVENT_SEQ, line.seenEvents);
      return 'event' as const;
    })();
    let timer: NodeJS.Timeout | undefined;
    const waits: Promise<StopEvent | 'event' | 'timeout'>[] = [waitEvent, this.whenEnded()];
    if (timeoutMs !== undefined) waits.push(new Promise((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs))));
    const first = await Promise.race(waits);
    clearTimeout(timer);
    if (first === 'timeout') return null;
    if (first !== 'event') return first;
    line.seenEvents = line.ch.load(WORD.EVENT_SEQ);
    return line.ch.event<StopEvent>();
  }

  /** Waits (bounded) for the stop of each line asked to stop; a line that does not stop is logged and left running. */
  private async stopped(lines: Line[]): Promise<StopEvent[]> {
    const events = await Promise.all(lines.map((l) => this.nextEvent(l, this.stopTimeoutMs)));
    const out: StopEvent[] = [];
    events.forEach((e, i) => {
      if (e) out.push(e);
      else this.log(`gdb: vCPU ${lines[i]!.id} did not stop within ${this.stopTimeoutMs} ms; it runs on`);
    });
    return out;
  }

  private askToStop(line: Line): void {
    if (this.paused(line)) return;
    line.ch.store(WORD.STOP_REQ, 1);
    line.kick();
  }

  async halt(): Promise<StopEvent> {
    if (this.ended) return this.ended;
    const running = [...this.lines.values()].filter((l) => !this.paused(l) || l.ch.load(WORD.EVENT_SEQ) !== l.seenEvents);
    if (running.length === 0) return this.lastStop ?? { kind: 'interrupted', vcpu: this.vcpus()[0]! };
    return this.stopAll(running);
  }

  /** Stops the `running` lines and resolves with the first stop among them. */
  private async stopAll(running: Line[]): Promise<StopEvent> {
    for (const l of running) if (!this.paused(l)) this.askToStop(l);
    const events = await this.stopped(running);
    const e = events.find((x) => x.kind === 'ended') ?? events.find((x) => x.kind === 'debug') ?? events[0] ?? { kind: 'interrupted', vcpu: this.vcpus()[0]! };
    this.lastStop = e;
    return e;
  }

  async resume(actions: ReadonlyMap<number, ResumeAction>, debug: DebugConfig): Promise<StopEvent> {
    this.resuming = true;
    this.interruptPending = false;
    try {
      return await this.resumeLines(actions, debug);
    } finally {
      this.resuming = false;
      this.interruptPending = false;
    }
  }

  private async resumeLines(actions: ReadonlyMap<number, ResumeAction>, debug: DebugConfig): Promise<StopEvent> {
    if (this.ended) return this.ended;
    const started: Line[] = [];
    for (const [id, action] of actions) {
      const line = this.lines.get(id);
      // A vCPU that did not stop when asked still runs: nothing to resume.
      if (!line || !this.paused(line)) continue;
      // Its last stop was reported (or superseded): only the stop after this resume counts.
      line.seenEvents = line.ch.load(WORD.EVENT_SEQ);
      const r = await this.command(line, { op: 'resume', step: action === 'step', debug });
      if (!r.ok) {
        // Whatever already runs is stopped again; the stop says why nothing more happened.
        if (started.length) await this.stopAll(started);
        throw new Error(r.error);
      }
      started.push(line);
      if (this.interruptPending) this.askToStop(line);
    }
    if (started.length === 0) return this.halt();
    // All-stop: the first vCPU to stop stops the others.
    const first = await Promise.race(started.map((l) => this.nextEvent(l).then((e) => ({ l, e: e! }))));
    const others = started.filter((l) => l !== first.l);
    for (const l of others) this.askToStop(l);
    await this.stopped(others.filter((l) => !(this.paused(l) && l.ch.load(WORD.EVENT_SEQ) === l.seenEvents)));
    this.lastStop = first.e;
    return first.e;
  }

  interrupt(): void {
    if (this.ended) return;
    if (this.resuming) this.interruptPending = true;
    for (const l of this.lines.values()) this.askToStop(l);
  }

  request(vcpu: number, req: VcpuRequest): Promise<VcpuReply> {
    const line = this.lines.get(vcpu);
    if (!line) return Promise.resolve({ ok: false, error: `no vCPU ${vcpu}` });
    return this.command(line, req);
  }

  /** Sends a command to a paused vCPU and resolves with its reply (in order, one at a time). */
  private command(line: Line, cmd: AgentCommand): Promise<VcpuReply> {
    const run = async (): Promise<VcpuReply> => {
      if (this.ended) return { ok: false, error: 'the machine has ended' };
      if (!this.paused(line)) return { ok: false, error: `vCPU ${line.id} is running` };
      const before = line.ch.load(WORD.REPLY_SEQ);
      line.ch.sendCommand(cmd);
      const replied = (async () => {
        await line.ch.changed(WORD.REPLY_SEQ, before);
        return 'replied' as const;
      })();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.replyTimeoutMs)));
      const end = await Promise.race([replied, this.whenEnded(), timeout]);
      clearTimeout(timer);
      if (end === 'timeout') {
        const error = `vCPU ${line.id} did not answer a debug request (${cmd.op}) within ${this.replyTimeoutMs} ms`;
        this.log(`gdb: ${error}`);
        return { ok: false, error };
      }
      if (end !== 'replied') return { ok: false, error: 'the machine has ended' };
      return line.ch.reply<VcpuReply>();
    };
    const p = line.queue.then(run, run);
    line.queue = p;
    return p;
  }

  async detach(): Promise<void> {
    if (this.ended) return;
    for (const line of this.lines.values()) {
      if (this.paused(line)) await this.command(line, { op: 'resume', step: false, debug: NO_DEBUG });
    }
  }

  kill(): void {
    this.onKill();
  }
}
