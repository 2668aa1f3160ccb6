/**
 * An application processor of the software CPU, in its own thread (ap-worker.ts starts it): a
 * vCPU over the machine the boot thread shares (the same WebAssembly arena, so guest RAM is one
 * memory for every vCPU), with its own local APIC here, in its thread, beside it.
 *
 * - Start-up as on hardware: the vCPU waits in the INIT state until a start-up IPI arrives (after
 *   an INIT), then runs in real mode at CS = vector << 8, IP = 0. A later INIT puts it back there.
 * - Its local APIC: the register page at its base is served here (each vCPU sees its own), so are
 *   CR8, IA32_APIC_BASE, IA32_TSC_DEADLINE and its timer (this thread's run loop ticks it).
 *   Messages to and from other vCPUs' APICs and the I/O APIC go over the APIC bus (apic-bus.ts).
 * - Devices are the boot thread's: port I/O and MMIO beside the APIC page are forwarded through
 *   the device mailbox (device-mailbox.ts), and so are EOIs of level-triggered vectors (the I/O
 *   APIC's remote IRR).
 * - HLT sleeps on the vCPU's stop word until an interrupt is pending, the timer's deadline, or a
 *   wake from another thread (the APIC bus notifies that word).
 * - A debugger (with a debug channel): a VcpuAgent serves it after each exit, and where the loop
 *   already wakes outside run() (waiting for start-up, halted) when the debugger asked it to stop
 *   (its kick wakes the stop word too). Waiting for start-up, the vCPU cannot step.
 * - A snapshot: the board has its own line to the vCPU (a debug channel, `saveChannel`), on which a
 *   second VcpuAgent pauses it where the debugger's would, and answers `save` with the state
 *   groups, the local APIC (its inbox on the APIC bus taken in first) and the run state (ApRun).
 *   A restored AP (`restore`) starts in that state, and runs once guest time runs.
 */
import type { MessagePort } from 'node:worker_threads';
import { receiveMessageOnPort } from 'node:worker_threads';
import { openBackend } from '../backends/open.js';
import { TsvmmError } from '../common/errors.js';
import type { CpuModelName } from '../backends/soft/cpu-models.js';
import { LocalApic } from '../devices/local-apic.js';
import type { StopHandle } from '../nvmm/backend.js';
import { Machine, type MachineShare, type Vcpu } from '../nvmm/machine.js';
import { GPR, MSR, SEG, STATE, copyState, type X64State } from '../nvmm/state.js';
import type { LocalApicState } from '../devices/local-apic.js';
import { encodeVcpu } from './snapshot-file.js';
import { STOP_WORD, stopVcpu } from '../nvmm/stop.js';
import { FEATURE, LEAF, featureMask } from '../x86/cpuid.js';
import { ApicBus } from './apic-bus.js';
import { VcpuAgent } from './gdb/vcpu-agent.js';
import { ACCESS, DeviceMailbox, serveApExit, type Forward } from './device-mailbox.js';
import { IDENTITY_REGISTERS } from './interrupts.js';

const APIC_PAGE = 0x1000;
const RFLAGS_IF = 1n << 9n;
/** Longest sleep of a vCPU waiting for start-up or halted without a timer (it looks at the machine's end after it). */
const IDLE_WAIT_MS = 50;

/** What the boot thread posts once every AP has its vCPU: every vCPU's stop handle, by id. */
export interface ApBusMessage {
  stops: StopHandle[];
}

export interface SoftApData {
  share: MachineShare;
  id: number;
  cpu?: CpuModelName;
  mailbox: SharedArrayBuffer;
  ended: SharedArrayBuffer;
  bspStop: StopHandle;
  apicBus: SharedArrayBuffer;
  debugChannel?: SharedArrayBuffer;
  /** The board's line to this vCPU for snapshots (a debug channel's layout). */
  saveChannel?: SharedArrayBuffer;
  restore?: ApRestore;
}

/**
 * What a snapshot keeps of an application processor beside its state groups: where its run loop
 * was (running, in HLT, or waiting for a start-up IPI, with the vector of one that came already)
 * and an NMI it took from the APIC bus but has not injected yet.
 */
export interface ApRun {
  runState: 'running' | 'halted' | 'wait-for-SIPI';
  sipiVector: number;
  nmiPending: boolean;
}

/** A saved application processor, as the board hands it to the AP's thread on restore. */
export interface ApRestore {
  state: X64State;
  apic: LocalApicState;
  run: ApRun;
}

export function runSoftAp(data: SoftApData, port: MessagePort): void {
  const backend = openBackend('soft', data.cpu ? { cpu: data.cpu } : {});
  const machine = Machine.attach(backend, data.share);
  try {
    const vcpu = machine.createVcpu(data.id);
    const resetState = structuredClone(vcpu.getState(STATE.ALL));
    // A restored vCPU's state goes in while guest time stands at the saved instant (the boot
    // thread starts it only after every AP is ready): its TSC keeps its distance to guest time.
    if (data.restore) {
      copyState(vcpu.getState(STATE.ALL), data.restore.state, STATE.ALL);
      vcpu.setState(STATE.ALL);
      vcpu.commitState();
    }
    port.postMessage({ stopHandle: vcpu.stopHandle() });
    const ended = new Int32Array(data.ended);
    const isEnded = () => Atomics.load(ended, 0) !== 0;
    const stopWords = new Int32Array(vcpu.stopHandle().flag);
    // Wait for the bus (every vCPU's stop handle) or the machine's end.
    let busMsg: ApBusMessage | undefined;
    while (!busMsg && !isEnded()) {
      const m = receiveMessageOnPort(port);
      if (m) busMsg = m.message as ApBusMessage;
      else Atomics.wait(stopWords, STOP_WORD.STOP, 0, 5);
    }
    if (!busMsg) return;
    new SoftAp(vcpu, data, busMsg, resetState, isEnded).run();
  } finally {
    machine.destroy();
    backend.close?.();
  }
}

class SoftAp {
  private readonly id: number;
  private readonly apic: LocalApic;
  private readonly bus: ApicBus;
  private readonly mailbox: DeviceMailbox;
  private readonly stopWords: Int32Array;
  /** The vCPU's state at power-up, which INIT returns it to. */
  private readonly resetState: X64State;
  /** Waiting for a start-up IPI (the INIT state). */
  private waitingForSipi = true;
  private sipiVector = -1;
  private nmiRequested = false;
  /** In HLT (halt()). */
  private halted = false;
  private readonly empty = new Uint8Array(0);
  private readonly debug: VcpuAgent | undefined;
  /** The board's line (snapshots). */
  private readonly saver: VcpuAgent | undefined;
  /** Restored: waits for guest time to run before its first instruction (HLT first if it was halted). */
  private readonly restored: ApRun | undefined;

  constructor(private readonly vcpu: Vcpu, data: SoftApData, busMsg: ApBusMessage, resetState: X64State, private readonly isEnded: () => boolean) {
    this.id = data.id;
    this.mailbox = new DeviceMailbox(data.mailbox);
    this.stopWords = new Int32Array(vcpu.stopHandle().flag);
    this.bus = new ApicBus(data.apicBus, busMsg.stops);
    const bspStop = data.bspStop;
    const forward: Forward = (kind, addr, size, write, bytes) =>
      this.mailbox.call({ kind, addr, size, write, data: bytes }, () => stopVcpu(bspStop), isEnded);
    this.forward = forward;
    const apic: LocalApic = new LocalApic({
      id: data.id, now: vcpu.machine.clock.now, tscDeadline: true, x2apic: true, reinjectPeriodic: true,
      sendIpi: (msg) => this.bus.deliver(msg, { index: this.id, apic }),
      onEoi: (vector) => void forward(ACCESS.EOI, vector, 0, true, this.empty),
      onNmi: () => { this.nmiRequested = true; },
      // INIT: back to waiting for a start-up IPI (the sender stopped the run loop; the one that follows may come in the same drain).
      onInit: () => { this.waitingForSipi = true; this.sipiVector = -1; this.nmiRequested = false; },
      onSipi: (vector) => { if (this.waitingForSipi) this.sipiVector = vector; },
    });
    this.apic = apic;
    if (data.restore) {
      apic.restore(data.restore.apic);
      const run = data.restore.run;
      this.waitingForSipi = run.runState === 'wait-for-SIPI';
      this.sipiVector = this.waitingForSipi ? run.sipiVector : -1;
      this.nmiRequested = run.nmiPending;
      this.restored = run;
    }
    this.bus.publish(this.id, apic);
    const apicBit = featureMask(FEATURE.APIC);
    vcpu.configure({ kind: 'cpuid', leaf: LEAF.FEATURES, set: { edx: apicBit, ecx: featureMask(FEATURE.X2APIC) } });
    vcpu.configure({ kind: 'cpuid', leaf: LEAF.EXT_FEATURES1, set: { edx: apicBit } });
    this.resetState = resetState;
    this.debug = data.debugChannel && new VcpuAgent(vcpu, data.debugChannel, {
      ending: isEnded,
      runState: () => this.runState(),
    });
    this.saver = data.saveChannel && new VcpuAgent(vcpu, data.saveChannel, { ending: isEnded, runState: () => this.runState(), save: () => this.save() });
    const io = new Uint8Array(4);
    vcpu.setInlineDevices({
      io: (p, size, isIn, value) => {
        for (let k = 0; k < size; k++) io[k] = (value >>> (8 * k)) & 0xff;
        forward(ACCESS.IO, p, size, !isIn, io.subarray(0, size));
        return isIn ? io[0]! | (io[1]! << 8) | (io[2]! << 16) | (io[3]! << 24) : 0;
      },
      interruptPending: () => {
        if (this.bus.pending(this.id)) this.bus.drain(this.id, apic);
        return apic.pendingInterrupt();
      },
      acknowledge: () => apic.acknowledge(),
      tick: (now) => {
        apic.tick(now);
        return apic.nextDeadline() ?? Infinity;
      },
      ended: isEnded,
      mmio: (gpa, bytes, write) => {
        if (apic.hardwareEnabled) {
          const offset = gpa - apic.baseAddress;
          if (offset >= 0 && offset < APIC_PAGE) {
            if (write) {
              apic.write(offset, bytes);
              if (IDENTITY_REGISTERS.has(offset)) this.bus.publish(this.id, apic);
            } else apic.read(offset, bytes);
            return;
          }
        }
        forward(ACCESS.MMIO, gpa, bytes.length, write, bytes);
      },
      apic: {
        getCr8: () => apic.getCr8(), setCr8: (v) => apic.setCr8(v), readBaseMsr: () => apic.readBaseMsr(),
        readTscDeadline: () => apic.readTscDeadline(), writeTscDeadline: (ns) => apic.writeTscDeadline(ns),
        writeBaseMsr: (v) => {
          const ok = apic.writeBaseMsr(v);
          this.bus.publish(this.id, apic);
          return ok;
        },
        // (x2APIC mode changes only through the base MSR above, which publishes; ID and LDR are read-only then.)
        readX2apicMsr: (msr) => apic.readX2apicMsr(msr), writeX2apicMsr: (msr, lo, hi) => apic.writeX2apicMsr(msr, lo, hi),
      },
    });
  }

  private readonly forward: Forward;

  private runState(): ApRun['runState'] {
    return this.waitingForSipi ? 'wait-for-SIPI' : this.halted ? 'halted' : 'running';
  }

  /**
   * The board's `save`, while paused: the inbox is taken into the APIC first (an INIT or start-up
   * IPI into the run state, an NMI into nmiPending), so nothing of this vCPU is left on the bus.
   */
  private save(): { ok: true; bytes: Uint8Array; text: string } {
    this.bus.drain(this.id, this.apic);
    if (this.vcpu.xsaveExtendedInUse()) {
      throw new TsvmmError('TSVMM_UNSUPPORTED', `vCPU ${this.id}'s AVX (or later XSAVE) registers hold state, which a snapshot does not carry yet`);
    }
    const bytes = encodeVcpu({ id: this.id, state: this.vcpu.getState(STATE.ALL), xsaveExtended: new Uint8Array(0) });
    const run: ApRun = { runState: this.runState(), sipiVector: this.sipiVector, nmiPending: this.nmiRequested };
    return { ok: true, bytes, text: JSON.stringify({ apic: this.apic.getState(), run }) };
  }

  private end(code: number): void {
    this.forward(ACCESS.END, code, 0, true, this.empty);
  }

  /** Takes the inbox, and INIT / start-up / NMI as they come out of it. */
  private takeMessages(): void {
    this.bus.drain(this.id, this.apic);
    if (this.waitingForSipi && this.sipiVector >= 0) this.startAt(this.sipiVector);
    if (this.nmiRequested && !this.waitingForSipi) {
      this.nmiRequested = false;
      this.vcpu.inject({ type: 'nmi' });
    }
  }

  /** The start-up IPI: the power-up state with CS:IP = vector << 8 : 0 (SDM vol. 3A, "MP Initialization Protocol"). */
  private startAt(vector: number): void {
    const s = this.vcpu.getState(STATE.ALL);
    copyState(s, this.resetState, STATE.ALL);
    // The TSC keeps counting the machine's clock, as the boot vCPU's does (0: left as it is).
    s.msrs[MSR.TSC] = 0n;
    const cs = s.segs[SEG.CS]!;
    cs.selector = vector << 8;
    cs.base = BigInt(vector << 12);
    s.gprs[GPR.RIP] = 0n;
    this.vcpu.setState(STATE.ALL);
    this.waitingForSipi = false;
    this.sipiVector = -1;
  }

  /** Sleeps until woken (a message, a stop) or `ms` pass. */
  private sleep(ms: number): void {
    Atomics.wait(this.stopWords, STOP_WORD.STOP, 0, ms);
  }

  run(): void {
    const vcpu = this.vcpu;
    this.debug?.atStart();
    if (this.restored) {
      // Every vCPU starts with guest time (the boot vCPU's first run starts it).
      while (!this.vcpu.machine.clock.running && !this.isEnded()) {
        Atomics.store(this.stopWords, STOP_WORD.STOP, 0);
        if (this.debug?.pauseIfAsked() || this.saver?.pauseIfAsked()) continue;
        this.sleep(1);
      }
      if (this.restored.runState === 'halted') this.halt();
    }
    while (!this.isEnded()) {
      if (this.waitingForSipi) {
        Atomics.store(this.stopWords, STOP_WORD.STOP, 0);
        this.takeMessages();
        if (this.debug?.pauseIfAsked() || this.saver?.pauseIfAsked()) continue;
        if (this.waitingForSipi) this.sleep(IDLE_WAIT_MS);
        continue;
      }
      const exit = vcpu.run();
      if (this.debug?.onExit(exit)) continue;
      this.saver?.onExit(exit);
      const r = serveApExit(vcpu, exit, this.forward);
      if (r === 'halted') this.halt();
      else if (r !== 'run') {
        this.end(r);
        return;
      }
      this.takeMessages();
    }
  }

  /** HLT: until an interrupt it would take, an NMI or INIT, or the machine's end. */
  private halt(): void {
    const apic = this.apic, clock = this.vcpu.machine.clock;
    const ifSet = (this.vcpu.getState(STATE.GPRS).gprs[GPR.RFLAGS]! & RFLAGS_IF) !== 0n;
    this.halted = true;
    try {
      while (!this.isEnded()) {
        Atomics.store(this.stopWords, STOP_WORD.STOP, 0);
        apic.tick(clock.now());
        this.takeMessages();
        if (this.nmiRequested || this.waitingForSipi) return;
        if (ifSet && apic.pendingInterrupt()) return;
        if (this.debug?.pauseIfAsked() || this.saver?.pauseIfAsked()) continue;
        const next = apic.nextDeadline();
        this.sleep(next === undefined ? IDLE_WAIT_MS : Math.min(IDLE_WAIT_MS, Math.max(0, (next - clock.now()) / 1e6)));
      }
    } finally {
      this.halted = false;
    }
  }
}
