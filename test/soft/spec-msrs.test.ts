// The soft CPU (its default model, max) reports, through CPUID leaf 7 and IA32_ARCH_CAPABILITIES,
// that it is immune to speculative-execution attacks (it executes nothing speculatively): the MSR reads its *_NO bits
// and enhanced IBRS, refuses writes; IA32_SPEC_CTRL keeps its three defined bits and refuses
// others; IA32_PRED_CMD takes IBPB and cannot be read. RDRAND and RDSEED return host random bits.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import { idtGuest, imageQword, outWordsUntilHalt } from '../helpers/idt-guest.js';
import { withMachine } from '../helpers/machine.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';

// RDCL_NO, IBRS_ALL, SSB_NO, MDS_NO, IF_PSCHANGE_MC_NO, TAA_NO, SBDR_SSDP_NO, FBSDP_NO, PSDP_NO,
// BHI_NO, PBRSB_NO, GDS_NO, RFDS_NO (Intel SDM vol. 4, table 2-2).
const ARCH_CAPABILITIES = [0, 1, 4, 5, 6, 8, 13, 14, 15, 20, 24, 26, 27].reduce((v, b) => v + 2 ** b, 0);

test('ARCH_CAPABILITIES, SPEC_CTRL, PRED_CMD, CPUID leaf 7, RDRAND and RDSEED (soft)', needsNasm, () => {
  const image = guestImage('soft/spec-msrs.asm');
  withMachine(SoftBackend.open(), (machine) => {
    const vcpu = idtGuest(machine, image, [[13, imageQword(image, 8)]]);
    assert.deepEqual(outWordsUntilHalt(vcpu), [
      ARCH_CAPABILITIES, 0, // IA32_ARCH_CAPABILITIES
      5, // IA32_SPEC_CTRL read back
      (1 << 26) + (1 << 27) + 2 ** 29 + 2 ** 31, // CPUID.7.0:EDX: IBRS/IBPB, STIBP, ARCH_CAPABILITIES, SSBD
      0, // CPUID.7.1:EDX
      7, // highest basic leaf
      (1 << 7) + (1 << 18) + (1 << 23) + (1 << 24), // CPUID.7.0:EBX: SMEP, RDSEED, CLFLUSHOPT, CLWB
      1, // CPUID.1:ECX: RDRAND
      0x10101, // RDRAND and RDSEED set CF, and their values differ
      13, 1, 13, 2, 13, 3, // #GP: write ARCH_CAPABILITIES, read PRED_CMD, reserved SPEC_CTRL bit
      0xd0e,
    ]);
  });
});
