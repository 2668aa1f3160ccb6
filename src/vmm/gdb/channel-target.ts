/**
 * A DebugTarget over the vCPUs' debug channels (channel.ts), for the stub's thread: each vCPU runs
 * in its own thread with a VcpuAgent; this side sends commands, waits for replies and stop events
 * without blocking, and keeps the vCPUs all stopped or all running, as GDB's all-stop mode wants:
 * when one stops, the others are asked to stop too before the stop is reported.
 */
import { NO_DEBUG, type DebugConfig } from '../../nvmm/debug.js';
import { DebugChannel, WORD } from './channel.js';
import type { AgentCommand } from './vcpu-agent.js';
import type { DebugTarget, ResumeAction, StopEvent, VcpuReply, VcpuRequest } from './target.js';

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
  private ended: StopEvent | null = null;
  private endedWaiters: ((e: StopEvent) => void)[] = [];
  private lastStop: StopEvent | null = null;
  /** A resume is starting vCPUs, and an interrupt came meanwhile: each vCPU started is asked to stop. */
  private resuming = false;
  private interruptPending = false;

  constructor(vcpus: TargetVcpu[], onKill: () => void) {
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

  /** The next stop event of `line` (one it posted since the last taken counts), or the machine's end. */
  private async nextEvent(line: Line): Promise<StopEvent> {
    const waitEvent = (async () => {
      await line.ch.changed(WORD.EVENT_SEQ, line.seenEvents);
      return null;
    })();
    const first = await Promise.race([waitEvent, this.whenEnded()]);
    if (first) return first;
    line.seenEvents = line.ch.load(WORD.EVENT_SEQ);
    return line.ch.event<StopEvent>();
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
    const events = await Promise.all(running.map((l) => this.nextEvent(l)));
    const e = events.find((x) => x.kind === 'ended') ?? events.find((x) => x.kind === 'debug') ?? events[0]!;
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
      if (!line) continue;
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
    const first = await Promise.race(started.map((l) => this.nextEvent(l).then((e) => ({ l, e }))));
    const others = started.filter((l) => l !== first.l);
    for (const l of others) this.askToStop(l);
    await Promise.all(others.map((l) => (this.paused(l) && l.ch.load(WORD.EVENT_SEQ) === l.seenEvents ? null : this.nextEvent(l))));
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
        return null;
      })();
      const end = await Promise.race([replied, this.whenEnded()]);
      if (end) return { ok: false, error: 'the machine has ended' };
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
