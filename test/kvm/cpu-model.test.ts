// What the kvm backend presents to a guest, checked without /dev/kvm: the CPUID it derives from
// KVM_GET_SUPPORTED_CPUID, when it has an XCR0, and which MSRs its filter leaves to KVM. The
// same facts on a real KVM: test/kvm-nested/linux-kvm.test.ts (Linux meets no refused MSR) and
// test/nvmm/events.test.ts, run by scripts/kvm-nested.sh.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hasXcrs, msrFilterRanges, normalizeCpuid } from '../../src/backends/kvm/kvm-backend.js';
import type { CpuidEntry } from '../../src/backends/kvm/kvm.js';

const leaf = (fn: number, regs: Partial<CpuidEntry> = {}): CpuidEntry => ({ function: fn, index: 0, flags: 0, eax: 0, ebx: 0, ecx: 0, edx: 0, ...regs });

/** Whether the filter's bitmaps let KVM handle `msr` in the kernel. */
function allowed(msr: number): boolean {
  return msrFilterRanges().some((r) => msr >= r.base && msr < r.base + r.bitmap.length * 8 && (r.bitmap[(msr - r.base) >> 3]! & (1 << ((msr - r.base) & 7))) !== 0);
}

test('XCR0 exists only with KVM_CAP_XCRS and XSAVE in the supported CPUID (qemu64 has no XSAVE: KVM_SET_XCRS is EINVAL)', () => {
  const xsave = 1 << 26;
  assert.equal(hasXcrs([leaf(1, { ecx: xsave })], 1), true);
  assert.equal(hasXcrs([leaf(1, { ecx: 0 })], 1), false);
  assert.equal(hasXcrs([leaf(1, { ecx: xsave })], 0), false);
  assert.equal(hasXcrs([], 1), false);
});

test('the vCPU presents the hypervisor bit and its APIC id, and not KVM\'s paravirtual leaves (their MSRs are filtered)', () => {
  const supported = [leaf(0, { eax: 0xd }), leaf(1, { ebx: 0x00010800, ecx: 0x76f83203 }), leaf(0xb, { edx: 0 }), leaf(0x40000000, { eax: 0x40000001, ebx: 0x4b4d564b }), leaf(0x40000001, { eax: 0x1007efb }), leaf(0x80000000)];
  const cpuid = normalizeCpuid(supported.map((e) => ({ ...e })), 3);
  assert.deepEqual(cpuid.map((e) => e.function), [0, 1, 0xb, 0x80000000]);
  const l1 = cpuid.find((e) => e.function === 1)!;
  assert.equal(l1.ecx >>> 31, 1);
  assert.equal(l1.ebx >>> 24, 3);
  assert.equal(cpuid.find((e) => e.function === 0xb)!.edx, 3);
  // The hypervisor leaves' MSRs (kvm-clock and the rest) stay with the VMM.
  for (const msr of [0x11, 0x12, 0x4b564d00, 0x4b564d01, 0x40000000]) assert.equal(allowed(msr), false, msr.toString(16));
});

test('the MSRs Linux reads because CPUID or the vendor says they exist are KVM\'s to answer', () => {
  // ARCH_CAPABILITIES (KVM always offers CPUID 7.EDX[29]), TSC_ADJUST, PERF_CAPABILITIES; the AMD
  // model MSRs Linux reads on any AMD CPU (SYSCFG, HWCR, INT_PENDING_MSG, DE_CFG); AMD's and
  // Intel's performance counters (KVM checks them against the vCPU's PMU).
  for (const msr of [0x10a, 0x3b, 0x345, 0xc0010010, 0xc0010015, 0xc0010055, 0xc0011029, 0xc0010000, 0xc0010007, 0xc0010200, 0xc001020b, 0xc1, 0x186, 0x38f]) {
    assert.equal(allowed(msr), true, msr.toString(16));
  }
  // An MSR nobody emulates still exits to the VMM, as with NVMM.
  for (const msr of [0x1234, 0xc0010300, 0xc001100f]) assert.equal(allowed(msr), false, msr.toString(16));
  assert.ok(msrFilterRanges().length <= 16, 'KVM takes at most 16 filter ranges');
});
