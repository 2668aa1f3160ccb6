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
import { runSoftAp, type ApRestore } from './soft-ap.js';

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
  /** The soft backend's: the board's line to this vCPU for snapshots, and the saved AP it continues. */
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
  const debug = data.debugChannel && new VcpuAgent(vcpu, data.debugChannel, {
    ending: isEnded,
    runState: () => vcpu.runState() ?? 'running',
  });

  try {
    debug?.atStart();
    while (!isEnded()) {
      const exit = vcpu.run();
      if (debug?.onExit(exit)) continue;
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
