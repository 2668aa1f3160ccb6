/**
 * An application processor's thread: attaches to the machine the boot vCPU's thread built,
 * creates its vCPU (which waits for the guest's INIT/SIPI in the in-kernel LAPIC) and runs it.
 * Its device accesses go to the boot thread's devices through its mailbox. On the soft backend
 * the vCPU, its local APIC and its start-up are soft-ap.ts's.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openBackend, type Accel } from '../backends/open.js';
import { assertNever } from '../common/errors.js';
import { assistIo, assistMem } from '../nvmm/assist.js';
import type { StopHandle } from '../nvmm/backend.js';
import { Machine, type MachineShare } from '../nvmm/machine.js';
import { stopVcpu } from '../nvmm/stop.js';
import { EXC_GP } from '../x86/exceptions.js';
import { ACCESS, AP_END, DeviceMailbox } from './device-mailbox.js';
import type { CpuModelName } from '../backends/soft/cpu-models.js';
import { runSoftAp } from './soft-ap.js';

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
  const forward = (kind: number, addr: number, size: number, write: boolean, bytes: Uint8Array) =>
    mailbox.call({ kind, addr, size, write, data: bytes }, kick, isEnded);
  const end = (code: number) => forward(ACCESS.END, code, 0, true, new Uint8Array(0));

  try {
    for (let running = true; running && !isEnded();) {
      const exit = vcpu.run();
      switch (exit.kind) {
        case 'io':
          assistIo(vcpu, (io) => void forward(ACCESS.IO, io.port, io.size, !io.in, io.data));
          break;
        case 'memory':
          assistMem(vcpu, (m) => void forward(ACCESS.MMIO, m.gpa, m.size, m.write, m.data));
          break;
        case 'rdmsr':
        case 'wrmsr':
          vcpu.inject({ type: 'exception', vector: EXC_GP, errorCode: 0 });
          break;
        case 'shutdown':
          end(AP_END.TRIPLE_FAULT);
          running = false;
          break;
        case 'invalid':
        case 'halted':
          end(AP_END.ERROR);
          running = false;
          break;
        case 'stopped': case 'none': case 'interruptWindow': case 'nmiWindow': case 'tprChanged': case 'debug': case 'cpuid':
          break;
        default:
          assertNever(exit, 'exit');
      }
    }
  } finally {
    machine.destroy();
    backend.close?.();
  }
}
