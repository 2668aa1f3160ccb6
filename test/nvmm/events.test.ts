// Event injection (exceptions with error codes, external interrupts, NMI), interrupt-window
// exits, CPUID masks and a full state round trip, on kvm, with guests/tests/events.asm.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { assistIo } from '../../src/nvmm/assist.js';
import type { VcpuEvent } from '../../src/nvmm/event.js';
import { Machine, type Vcpu } from '../../src/nvmm/machine.js';
import { CR, DR, GPR, MSR, SEG, STATE, emptyState, copyState } from '../../src/nvmm/state.js';
import { enterIdtGuest, mapIdtGuest, outWord } from '../helpers/idt-guest.js';
import { kvmOrSkip } from '../helpers/kvm.js';
import { showExit } from '../helpers/machine.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';

const IDT_VECTORS = 33;
const ENTRY = { handlers: 0x08, idle: 0x10, window: 0x18, cpuid: 0x20 } as const;

interface Guest {
  machine: Machine;
  vcpu: Vcpu;
  entry(which: keyof typeof ENTRY): bigint;
}

/** The guest of test/helpers/idt-guest.ts, each vector's gate pointing at handlers + 16 * vector. */
function setUp(t: TestContext): Guest | undefined {
  const backend = kvmOrSkip(t);
  if (!backend) return undefined;
  const image = guestImage('tests/events.asm');
  const machine = new Machine(backend);
  t.after(() => machine.destroy());
  const entry = (which: keyof typeof ENTRY) => new DataView(image.buffer).getBigUint64(ENTRY[which], true);
  const handlers = Number(entry('handlers'));
  mapIdtGuest(machine, image, Array.from({ length: IDT_VECTORS }, (_, v) => [v, handlers + 16 * v] as const));
  const vcpu = machine.createVcpu(0);
  return { machine, vcpu, entry };
}

/** The guest's entry state (an IDT of IDT_VECTORS gates) with RIP at `rip`. */
function start(g: Guest, rip: bigint): void {
  enterIdtGuest(g.vcpu, rip, IDT_VECTORS);
}

/** Runs until the guest halts after reporting, collecting the 32-bit words written to `port`. */
function collect(vcpu: Vcpu, port: number, limit = 50): number[] {
  const words: number[] = [];
  for (let i = 0; i < limit; i++) {
    const exit = vcpu.run();
    if (exit.kind === 'io') {
      assistIo(vcpu, (io) => {
        assert.equal(io.port, port);
        words.push(outWord(io));
      });
    } else if (exit.kind === 'halted') {
      if (words.length >= 2) return words;
    } else {
      assert.fail(`unexpected exit ${showExit(exit)}`);
    }
  }
  return words;
}

function deliver(g: Guest, event: VcpuEvent): number[] {
  start(g, g.entry('idle'));
  g.vcpu.inject(event);
  return collect(g.vcpu, 0xe0);
}

test('injected exceptions reach the guest IDT with their error codes (kvm)', needsNasm, (t) => {
  const g = setUp(t);
  if (!g) return;
  assert.deepEqual(deliver(g, { type: 'exception', vector: 13, errorCode: 0x1234 }), [13, 0x1234]);
  assert.deepEqual(deliver(g, { type: 'exception', vector: 14, errorCode: 0x6 }), [14, 6]);
  assert.deepEqual(deliver(g, { type: 'exception', vector: 6 }), [6, 0]);
  assert.deepEqual(deliver(g, { type: 'exception', vector: 12 }), [12, 0]); // error code defaults to 0
});

test('injected external interrupts and NMIs reach the guest (kvm)', needsNasm, (t) => {
  const g = setUp(t);
  if (!g) return;
  // Interrupts are enabled by the guest's first instruction: run it to its HLT first.
  start(g, g.entry('idle'));
  assert.equal(g.vcpu.run().kind, 'halted');
  g.vcpu.inject({ type: 'interrupt', vector: 0x20 });
  assert.deepEqual(collect(g.vcpu, 0xe0), [0x20, 0]);
  assert.deepEqual(deliver(g, { type: 'nmi' }), [2, 0]);
  assert.deepEqual(deliver(g, { type: 'interrupt', vector: 2 }), [2, 0]); // vector 2 is an NMI, as in NVMM
});

test('interrupt-window exiting: the exit comes once the guest enables interrupts (kvm)', needsNasm, (t) => {
  const g = setUp(t);
  if (!g) return;
  start(g, g.entry('window'));
  g.vcpu.state.intr.intWindowExiting = true;
  g.vcpu.setState(STATE.INTR);
  const exit = g.vcpu.run();
  assert.equal(exit.kind, 'interruptWindow');
  const s = g.vcpu.getState(STATE.GPRS | STATE.INTR);
  assert.equal(s.gprs[GPR.RFLAGS]! & 0x200n, 0x200n, 'IF is set');
  assert.equal(s.gprs[GPR.RCX], 0n, 'the interrupts-off loop ran to its end');
  s.intr.intWindowExiting = false;
  g.vcpu.setState(STATE.INTR);
  g.vcpu.inject({ type: 'interrupt', vector: 0x20 });
  assert.deepEqual(collect(g.vcpu, 0xe0), [0x20, 0]);
});

test('CPUID set/del masks are what the guest sees (kvm)', needsNasm, (t) => {
  const g = setUp(t);
  if (!g) return;
  start(g, g.entry('cpuid'));
  const [ecx0] = collect(g.vcpu, 0xe1);
  const HYPERVISOR = 0x80000000; // leaf 1 ECX bit 31
  assert.equal((ecx0! & HYPERVISOR) >>> 0, HYPERVISOR, 'KVM advertises the hypervisor bit');
  // A fresh vCPU (KVM fixes CPUID at the first run) with the bit deleted. Only this bit is
  // checked: PVM, the KVM on these machines, derives most other leaf-1 bits from the host and
  // ignores them in KVM_SET_CPUID2 (for example SSE3 and MMX stay set when deleted).
  const vcpu = g.machine.createVcpu(1);
  vcpu.configure({ kind: 'cpuid', leaf: 1, del: { ecx: HYPERVISOR } });
  start({ ...g, vcpu }, g.entry('cpuid'));
  const [ecx1] = collect(vcpu, 0xe1);
  assert.equal(ecx1, (ecx0! & ~HYPERVISOR) >>> 0);
});

test('every state group reads back what was set (kvm)', needsNasm, (t) => {
  const g = setUp(t);
  if (!g) return;
  start(g, g.entry('idle'));
  const want = emptyState();
  copyState(want, g.vcpu.getState(STATE.ALL), STATE.ALL);
  want.gprs.forEach((_, i) => (want.gprs[i] = 0x1111111111111111n * BigInt(i + 1)));
  want.gprs[GPR.RIP] = g.entry('idle');
  want.gprs[GPR.RFLAGS] = 0x202n;
  want.segs[SEG.FS] = { ...want.segs[SEG.FS]!, base: 0x7fff12345000n };
  want.segs[SEG.GS] = { ...want.segs[SEG.GS]!, base: 0xffff800000001000n };
  want.crs[CR.CR2] = 0xdeadbeef000n;
  want.crs[CR.CR8] = 5n;
  want.drs[DR.DR0] = 0x401000n;
  want.drs[DR.DR7] = 0x401n;
  want.msrs[MSR.STAR] = 0x0023001000000000n;
  want.msrs[MSR.LSTAR] = 0xffffffff81000000n;
  want.msrs[MSR.SFMASK] = 0x47700n;
  want.msrs[MSR.KERNELGSBASE] = 0xffff888000000000n;
  want.msrs[MSR.SYSENTER_EIP] = 0x1234n;
  want.fpu.fcw = 0x27f;
  want.fpu.mxcsr = 0x1fa0;
  want.fpu.xmms.fill(0xa5, 0, 32);
  copyState(g.vcpu.state, want, STATE.ALL);
  g.vcpu.setState(STATE.ALL);
  g.vcpu.run(); // commit, then the guest halts
  const got = g.vcpu.getState(STATE.ALL);
  const hex = (a: BigUint64Array) => [...a].map((x) => x.toString(16));
  for (const i of [GPR.RAX, GPR.RBX, GPR.RSP, GPR.R15]) assert.equal(got.gprs[i], want.gprs[i], `GPR ${i}`);
  assert.equal(got.segs[SEG.FS]!.base, want.segs[SEG.FS]!.base);
  assert.equal(got.segs[SEG.GS]!.base, want.segs[SEG.GS]!.base);
  assert.equal(got.segs[SEG.IDT]!.limit, IDT_VECTORS * 16 - 1);
  assert.deepEqual(hex(got.crs), hex(want.crs));
  assert.equal(got.drs[DR.DR0], want.drs[DR.DR0]);
  assert.equal(got.drs[DR.DR7]! & 0xfffn, 0x401n);
  for (const i of [MSR.EFER, MSR.STAR, MSR.LSTAR, MSR.SFMASK, MSR.KERNELGSBASE, MSR.SYSENTER_EIP, MSR.PAT]) {
    assert.equal(got.msrs[i], want.msrs[i], `MSR ${i}`);
  }
  assert.equal(got.fpu.fcw, 0x27f);
  assert.equal(got.fpu.mxcsr, 0x1fa0);
  assert.deepEqual([...got.fpu.xmms.subarray(0, 32)], new Array(32).fill(0xa5));
});
