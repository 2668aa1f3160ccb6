/**
 * Whether a /dev/kvm runs guest kernel code natively, for `--accel auto`.
 *
 * Not every KVM does: `kvm_pvm` (PVM, which runs guests on page-table isolation where the host has
 * no hardware virtualization extensions, as on this project's machines) runs guest CPL 3 natively
 * and emulates guest CPL 0-2, at about a microsecond per instruction. An unmodified kernel cannot
 * boot on it in useful time (Linux prints nothing in a minute), so `auto` takes the soft CPU
 * there; `--accel kvm` still takes KVM.
 *
 * Two kinds of evidence, both reduced to facts that `judgeRing0()` decides from, so that the
 * decision is testable without KVM:
 * - the vendor modules behind /dev/kvm (/sys/module/kvm_intel, kvm_amd, kvm_pvm; a built-in module
 *   has its directory too, because they all take parameters);
 * - when they do not settle it (none of them, or PVM next to a hardware module), a probe timed
 *   at open: a real-mode guest (CPL 0) loops LOOP_ITERATIONS times on one LOOP instruction.
 *   Hardware runs an iteration in a few nanoseconds, PVM in about a microsecond; the threshold,
 *   100 ns, is more than ten times away from both. The probe takes a few milliseconds natively
 *   (creating the VM, mostly) and about 20 ms on PVM (two timed runs, the faster counted, the
 *   second only when the first looks slow).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HostMemory } from '../../memory/host-memory.js';
import { PROT, type Backend, type BackendVcpu } from '../../nvmm/backend.js';

/** KVM vendor modules: hardware virtualization, and PVM's emulated kernel mode. */
export const KVM_HARDWARE_MODULES: readonly string[] = ['kvm_intel', 'kvm_amd'];
export const KVM_PVM_MODULE = 'kvm_pvm';

/** Iterations of the probe's LOOP (CX counts them: at most 0xffff). */
export const LOOP_ITERATIONS = 8192;
/** Above this many nanoseconds per iteration, guest ring 0 is emulated. */
export const EMULATED_NS_PER_ITERATION = 100;

/** A timed run of the probe: `iterations` LOOP instructions at CPL 0 took `ns` (the fastest run). */
export interface Ring0Probe {
  iterations: number;
  ns: number;
}

export interface KvmFacts {
  /** The KVM vendor modules present (null: unknown, e.g. no /sys/module). */
  modules: readonly string[] | null;
  /** The probe, when it ran. */
  probe?: Ring0Probe;
}

export type Ring0Verdict =
  | { native: true; why: string }
  | { native: false; why: string }
  /** The facts do not settle it: run the probe. */
  | { native: 'probe' };

/** Decides from the facts alone (pure). */
export function judgeRing0(facts: KvmFacts): Ring0Verdict {
  if (facts.probe) {
    const perIteration = facts.probe.ns / facts.probe.iterations;
    const measured = `a CPL-0 loop ran at ${perIteration < 10 ? perIteration.toFixed(1) : Math.round(perIteration)} ns per iteration`;
    return perIteration > EMULATED_NS_PER_ITERATION
      ? { native: false, why: `KVM emulates guest kernel code here (${measured})` }
      : { native: true, why: measured };
  }
  const mods = facts.modules ?? [];
  const pvm = mods.includes(KVM_PVM_MODULE);
  const hardware = mods.filter((m) => KVM_HARDWARE_MODULES.includes(m));
  if (pvm && hardware.length === 0) {
    return { native: false, why: `KVM here is ${KVM_PVM_MODULE} (PVM), which emulates guest kernel code (about 1 us per instruction)` };
  }
  if (!pvm && hardware.length > 0) return { native: true, why: `KVM here is ${hardware.join(', ')}` };
  return { native: 'probe' };
}

/** The KVM vendor modules loaded or built in, from `sysModule` (/sys/module); null when that is unreadable. */
export function kvmModules(sysModule = '/sys/module'): string[] | null {
  if (!existsSync(sysModule)) return null;
  return [...KVM_HARDWARE_MODULES, KVM_PVM_MODULE].filter((m) => existsSync(join(sysModule, m)));
}

/**
 * The probe's code at the reset vector (real mode, CS base 0xFFFF0000, IP 0xFFF0): HLT once
 * (the first run: vCPU entered, page mapped), then twice `mov cx, N; loop $; hlt`, each run
 * from a HLT to the next being one timed loop.
 */
export function probeCode(iterations = LOOP_ITERATIONS): Uint8Array {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > 0xffff) throw new RangeError(`probe iterations ${iterations} outside 1..65535`);
  const loop = [0xb9, iterations & 0xff, iterations >> 8, 0xe2, 0xfe, 0xf4]; // mov cx, imm16; loop $; hlt
  return Uint8Array.from([0xf4, ...loop, ...loop]);
}

const PAGE = 4096;
const RESET_PAGE = 0xfffff000;
const RESET_OFFSET = 0xff0;

/**
 * Runs the probe on `backend` (any backend: tests run it on the soft CPU) and returns the fastest
 * timed loop; the second loop runs only when the first is slower than the threshold (a busy host
 * may have delayed it). `now` gives nanoseconds.
 */
export function probeRing0(backend: Backend, iterations = LOOP_ITERATIONS, now: () => bigint = process.hrtime.bigint): Ring0Probe {
  const code = probeCode(iterations);
  const memory = HostMemory.allocate(PAGE);
  const machine = backend.createMachine();
  let vcpu: BackendVcpu | undefined;
  try {
    memory.bytes.set(code, RESET_OFFSET);
    machine.map({ gpa: RESET_PAGE, size: PAGE, prot: PROT.READ | PROT.EXEC, memory, offset: 0 });
    vcpu = machine.createVcpu(0);
    const v = vcpu;
    const run = (): void => {
      const exit = v.run();
      if (exit.kind !== 'halted') throw new Error(`the ring-0 probe ended with a ${exit.kind} exit, not HLT`);
    };
    run();
    let best = Infinity;
    for (let k = 0; k < 2; k++) {
      const t0 = now();
      run();
      best = Math.min(best, Number(now() - t0));
      if (best / iterations <= EMULATED_NS_PER_ITERATION) break;
    }
    return { iterations, ns: best };
  } finally {
    vcpu?.destroy();
    machine.destroy();
    memory.free();
  }
}

/**
 * The verdict on an open KVM backend: from the modules when they settle it, else from the probe.
 * A probe that fails (an exit other than HLT) leaves KVM in place: it is not evidence of emulation.
 */
export function checkKvmRing0(
  kvm: Backend, modules: readonly string[] | null = kvmModules(), probeFn: (kvm: Backend) => Ring0Probe = probeRing0,
): { native: boolean; why: string } {
  const first = judgeRing0({ modules });
  if (first.native !== 'probe') return first;
  let probe: Ring0Probe;
  try {
    probe = probeFn(kvm);
  } catch (e) {
    return { native: true, why: `the ring-0 probe failed (${(e as Error).message})` };
  }
  const verdict = judgeRing0({ modules, probe });
  return verdict.native === 'probe' ? { native: true, why: 'undecided' } : verdict;
}
