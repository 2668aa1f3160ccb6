// Worker for stop.test.ts: runs a vCPU spinning in `jmp $` and reports each run's exit.
import { parentPort } from 'node:worker_threads';
import { KvmBackend } from '../../src/backends/kvm/kvm-backend.js';
import { HostMemory } from '../../src/memory/host-memory.js';
import { PROT } from '../../src/nvmm/backend.js';
import { Machine } from '../../src/nvmm/machine.js';

const port = parentPort!;
const machine = new Machine(KvmBackend.open());
const page = HostMemory.allocate(4096);
page.bytes.set([0xeb, 0xfe], 0xff0); // jmp $ at the reset vector 0xFFFFFFF0
machine.mapHva(page);
machine.mapGpa(0xfffff000, page.hva, 4096, PROT.READ | PROT.EXEC);
const vcpu = machine.createVcpu(0);
port.postMessage({ handle: vcpu.stopHandle() });
port.on('message', (msg: string) => {
  if (msg === 'run') {
    port.postMessage({ running: true });
    port.postMessage({ exit: vcpu.run().kind });
  } else {
    machine.destroy();
    page.free();
    port.close();
  }
});
