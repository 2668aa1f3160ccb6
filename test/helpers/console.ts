/**
 * A machine's serial console in the tests: its output collected, and `until(re)`, which resolves
 * once the output matches and fails if the machine ends first (instead of waiting for the test's
 * timeout).
 */
import type { VirtualMachine } from '../../src/vmm/virtual-machine.js';

export function watchConsole(vm: VirtualMachine): { until: (re: RegExp) => Promise<void>; output: () => string } {
  let output = '';
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  vm.console.on('data', (b: Buffer) => {
    output += b.toString('latin1');
    for (const w of waiters.splice(0)) (w.re.test(output) ? w.resolve() : waiters.push(w));
  });
  const matched = (re: RegExp) => (re.test(output) ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ re, resolve })));
  const until = (re: RegExp) => Promise.race([
    matched(re),
    vm.exited.then((e) => { throw new Error(`the machine ended (${JSON.stringify(e.end)}) before ${re}: ${output.slice(-300)}`); }),
  ]);
  return { until, output: () => output };
}
