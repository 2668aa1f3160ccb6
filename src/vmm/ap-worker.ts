/**
 * An application processor's thread: attaches to the machine the boot vCPU's thread built,
 * creates its vCPU (which waits for the guest's INIT/SIPI in the in-kernel LAPIC) and runs it.
 * Its device accesses go to the boot thread's devices through its mailbox. On the soft backend
 * the vCPU, its local APIC and its start-up are soft-ap.ts's. With a debug channel, a VcpuAgent
 * serves the debugger after each exit (a stop it asks for kicks the vCPU out of its run).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openBackend, type Accel } from '../backends/open.js';
import type { StopHandle } from '../nvmm/backend.js';
import { Machine, type MachineShare } from '../nvmm/machine.js';
import { stopVcpu } from '../nvmm/stop.js';
import { ACCESS, AP_END, DeviceMailbox, serveApExit, type Forward } from './device-mailbox.js';
import type { CpuModelName } from '../backends/soft/cpu-models.js';
import { VcpuAgent } from './gdb/vcpu-agent.js';
import { runSoftAp, type ApRestore, type ApRun } from './soft-ap.js';
import { TsvmmError } from '../common/errors.js';
import { STATE, copyState } from '../nvmm/state.js';
import type { Vcpu } from '../nvmm/machine.js';
import type { VcpuReply } from './gdb/target.js';
import { encodeVcpu } from './snapshot-file.js';

export interface ApWorkerData {
  accel: Accel;
  share: MachineShare;
  id: number;
  mailbox: SharedArrayBuffer;
  /** Set (word 0) by the boot thread when the machine has ended. */
  ended: SharedArrayBuffer;
  bspStop: StopHandle;
  /** The soft backend's: its CPU model, and the APIC bus's shared words (apic-bus.ts). */
  cpu?: CpuModelName;
  apicBus?: SharedArrayBuffer;
  /** This vCPU's line to a debugger (gdb/channel.ts). */
  debugChannel?: SharedArrayBuffer;
  /** The board's line to this vCPU for pause and snapshots, and the saved AP it continues. */
  saveChannel?: SharedArrayBuffer;
  restore?: ApRestore;
}

const data = workerData as ApWorkerData;
if (data.accel === 'soft') runSoftAp({ ...data, apicBus: data.apicBus! }, parentPort!);
else runKvmAp();

function runKvmAp(): void {
  const backend = openBackend(data.accel);
  const machine = Machine.attach(backend, data.share);
  const vcpu = machine.createVcpu(data.id);
  if (data.restore) restoreKvmAp(vcpu, data.restore);
  parentPort!.postMessage({ stopHandle: vcpu.stopHandle() });

  const mailbox = new DeviceMailbox(data.mailbox);
  const ended = new Int32Array(data.ended);
  const isEnded = () => Atomics.load(ended, 0) !== 0;
  const kick = () => stopVcpu(data.bspStop);
  const forward: Forward = (kind, addr, size, write, bytes) =>
    mailbox.call({ kind, addr, size, write, data: bytes }, kick, isEnded);
  const end = (code: number) => forward(ACCESS.END, code, 0, true, new Uint8Array(0));
  // Waiting for its start-up IPI, the vCPU waits in KVM_RUN (the in-kernel APIC): a debugger's
  // kick brings it out as a `stopped` exit like any other, and the APIC says what it waits for
  // (a step of it while it waits for a SIPI is refused: KVM_RUN would not return).
  const runState = () => vcpu.runState() ?? 'running';
  const debug = data.debugChannel && new VcpuAgent(vcpu, data.debugChannel, { ending: isEnded, runState });
  // The board's line for pause and save: a kick brings the vCPU out of KVM_RUN wherever it waits.
  const saver = data.saveChannel && new VcpuAgent(vcpu, data.saveChannel, { ending: isEnded, runState, save: () => saveKvmAp(vcpu) });

  try {
    debug?.atStart();
    while (!isEnded()) {
      const exit = vcpu.run();
      if (debug?.onExit(exit)) continue;
      saver?.onExit(exit);
      const r = serveApExit(vcpu, exit, forward);
      if (r === 'run') continue;
      end(r === 'halted' ? AP_END.ERROR : r); // a halted vCPU waits in the in-kernel APIC: this exit is an error
      break;
    }
  } finally {
    machine.destroy();
    backend.close?.();
  }
}

/**
 * The board's `save` of a paused KVM application processor: its state groups, and as text its
 * in-kernel local APIC (registers and base, which the board translates at the snapshot's instant)
 * and its run state (KVM_GET_MP_STATE). A pending NMI is in the state groups (the events).
 */
function saveKvmAp(vcpu: Vcpu): VcpuReply {
  if (vcpu.xsaveExtendedInUse()) {
    throw new TsvmmError('TSVMM_UNSUPPORTED', `vCPU ${vcpu.id}'s AVX (or later XSAVE) registers hold state, which a snapshot does not carry yet`);
  }
  const lapic = vcpu.getLapic();
  if (!lapic) throw new TsvmmError('TSVMM_UNSUPPORTED', `vCPU ${vcpu.id} has no local APIC state to save`);
  const bytes = encodeVcpu({ id: vcpu.id, state: vcpu.getState(STATE.ALL), xsaveExtended: new Uint8Array(0) });
  const run: ApRun = { runState: vcpu.runState() ?? 'running', sipiVector: -1, nmiPending: false };
  const kernelLapic = { regs: Buffer.from(lapic.regs).toString('base64'), apicBase: lapic.apicBase.toString() };
  return { ok: true, bytes, text: JSON.stringify({ kernelLapic, run }) };
}

/**
 * A saved application processor into a new KVM vCPU, before it first runs: the local APIC (with
 * its CPUID and base), the state groups, then the run state the APIC holds. A start-up IPI the
 * soft CPU had taken but not acted on has no form KVM_SET_MP_STATE takes: refused.
 */
function restoreKvmAp(vcpu: Vcpu, r: ApRestore): void {
  if (!r.kernelLapic) throw new TsvmmError('TSVMM_SNAPSHOT_CORRUPT', `vCPU ${vcpu.id}: no in-kernel local APIC state to restore`);
  if (r.run.sipiVector >= 0) throw new TsvmmError('TSVMM_SNAPSHOT_MISMATCH', `vCPU ${vcpu.id} was saved with a start-up IPI pending, which KVM cannot be given`);
  vcpu.setLapic(r.kernelLapic);
  copyState(vcpu.getState(STATE.ALL), r.state, STATE.ALL);
  vcpu.setState(STATE.ALL);
  vcpu.commitState();
  vcpu.setRunState(r.run.runState);
  if (r.run.nmiPending) vcpu.inject({ type: 'nmi' });
}
