// Worker for stop.test.ts: runs a vCPU spinning in `jmp $` and reports each run's exit.
import { parentPort } from 'node:worker_threads';
import { KvmBackend } from '../../src/backends/kvm/kvm-backend.js';
import { PROT } from '../../src/nvmm/backend.js';
import { Machine } from '../../src/nvmm/machine.js';
import { mapPage } from '../../src/selftest/guest-x64.js';

const port = parentPort!;
const machine = new Machine(KvmBackend.open());
mapPage(machine, 0xfffff000, PROT.READ | PROT.EXEC).set([0xeb, 0xfe], 0xff0); // jmp $ at the reset vector 0xFFFFFFF0
const vcpu = machine.createVcpu(0);
port.postMessage({ handle: vcpu.stopHandle() });
port.on('message', (msg: string) => {
  if (msg === 'run') {
    port.postMessage({ running: true });
    port.postMessage({ exit: vcpu.run().kind });
  } else {
    machine.destroy();
    port.close();
  }
});
