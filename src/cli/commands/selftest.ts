import { openBackend, parseAccel } from '../../backends/open.js';
import { runLibnvmmSuite } from '../../selftest/libnvmm.js';
import { ACCEL_OPTION, parseCommandArgs } from '../args.js';
import type { Command } from '../command.js';

export const selftest: Command = {
  name: 'selftest',
  summary: 'run the ported libnvmm regression suite on a backend',
  usage: `usage: tsvmm selftest [--accel kvm|soft|auto]

Runs the libnvmm regression suites (h_io_assist, h_mem_assist 64/16-bit, h_misc, calc-vm) on
the chosen backend. Prints 'PASS name' or 'FAIL name: why' per case, then 'N passed, M failed'.
Exits 0 when every case passed. Needs nasm to assemble the guest code.
`,
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, ACCEL_OPTION);
    const backend = openBackend(parseAccel(values.accel), { log: (message) => io.err(`tsvmm: ${message}\n`) });
    let passed = 0;
    let failed = 0;
    runLibnvmmSuite(backend, (r) => {
      if (r.pass) passed++;
      else failed++;
      io.out(r.pass ? `PASS ${r.name}\n` : `FAIL ${r.name}: ${r.detail}\n`);
      if (r.note) io.out(`  note: ${r.note}\n`);
    });
    io.out(`${passed} passed, ${failed} failed\n`);
    return failed === 0 ? 0 : 1;
  },
};
