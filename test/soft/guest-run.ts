/**
 * Runs a nasm-assembled system guest on a backend from flat 32-bit protected mode (multiboot's
 * state: CS 0x08, data 0x10, paging off) at 0x100000, and records its port I/O: every OUT (port,
 * value) and IN (answered with 0) until an OUT to port 0xE1. The same image runs on the soft CPU
 * and on KVM, so a guest's expectations are checked against the real CPU where KVM has hardware
 * virtualization (kvm_intel or kvm_amd; not kvm_pvm, whose guests do not own rings 0-2).
 */
import { existsSync } from 'node:fs';
import { KvmBackend } from '../../src/backends/kvm/kvm-backend.js';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import type { Backend } from '../../src/nvmm/backend.js';
import type { Vcpu } from '../../src/nvmm/machine.js';
import { GPR, STATE } from '../../src/nvmm/state.js';
import { enterFlat32 } from '../../src/selftest/guest-x64.js';
import { kvmUnavailable } from '../helpers/kvm.js';
import { withRamMachine } from '../helpers/machine.js';

export const LOAD = 0x100000;
export const END_PORT = 0xe1;

export interface GuestIo {
  out: boolean;
  port: number;
  size: number;
  value: number;
}

export interface GuestRun {
  io: GuestIo[];
  /** How the run ended: 'end' (OUT to 0xE1) or the unexpected exit. */
  end: string;
  /** A copy of guest RAM at the end. */
  ram: Uint8Array;
  /** Little-endian reads of `ram` (the guests leave their results there). */
  u16(at: number): number;
  u32(at: number): number;
  /** As a number: the tests compare addresses and selectors. */
  u64(at: number): number;
}

/** `inspect` sees the vCPU once the run has ended, before the machine is destroyed. */
export function runGuest(backend: Backend, image: Uint8Array, ramSize = 8 << 20, maxExits = 500, inspect?: (vcpu: Vcpu) => void): GuestRun {
  return withRamMachine(backend, ramSize, ({ vcpu, ram }) => {
    ram.set(image, LOAD);
    enterFlat32(vcpu, LOAD);
    vcpu.setState(STATE.ALL);
    const io: GuestIo[] = [];
    let end = `more than ${maxExits} exits`;
    for (let n = 0; n < maxExits; n++) {
      const exit = vcpu.run();
      if (exit.kind === 'none') continue;
      if (exit.kind !== 'io' || exit.str) {
        const rip = vcpu.getState(STATE.GPRS).gprs[GPR.RIP]!;
        end = `${exit.kind}${exit.kind === 'invalid' ? ` (${exit.reason})` : ''} at RIP 0x${rip.toString(16)}`;
        break;
      }
      let value = 0;
      if (exit.data) { // KVM: the bytes are in the exit; an IN reads the zeros left in place
        for (let k = exit.operandSize - 1; k >= 0; k--) value = value * 256 + (exit.in ? 0 : exit.data[k]!);
        if (exit.in) exit.data.fill(0);
      } else {
        const st = vcpu.getState(STATE.GPRS);
        const rax = st.gprs[GPR.RAX]!;
        if (exit.in) st.gprs[GPR.RAX] = exit.operandSize === 4 ? 0n : rax & ~((1n << BigInt(8 * exit.operandSize)) - 1n);
        else value = Number(rax & ((1n << BigInt(8 * exit.operandSize)) - 1n));
        st.gprs[GPR.RIP] = exit.npc!;
        vcpu.setState(STATE.GPRS);
      }
      if (!exit.in && exit.port === END_PORT) { end = 'end'; break; }
      io.push({ out: !exit.in, port: exit.port, size: exit.operandSize, value });
    }
    inspect?.(vcpu);
    const copy = ram.slice();
    const view = new DataView(copy.buffer);
    return {
      io, end, ram: copy,
      u16: (at) => view.getUint16(at, true),
      u32: (at) => view.getUint32(at, true),
      u64: (at) => Number(view.getBigUint64(at, true)),
    };
  });
}

/** Runs `image` (runGuest, with its defaults) on each of backends() in turn: [backend name, run]. */
export function* runOnEachBackend(image: Uint8Array): Generator<[string, GuestRun]> {
  for (const [name, open] of backends()) yield [name, runGuest(open(), image)];
}

/** The OUT values to `port` (the guest's progress reports). */
export function reports(run: GuestRun, port = 0xe0): number[] {
  return run.io.filter((x) => x.out && x.port === port).map((x) => x.value);
}

/**
 * Whether KVM here runs guests with hardware virtualization (kvm_intel or kvm_amd). kvm_pvm (KVM
 * without VMX/SVM, as in nested cloud VMs) runs CPL-3 64-bit code faithfully but not a guest's own
 * rings 0-2 nor compatibility mode, so system guests are not compared with it.
 */
export function hardwareKvm(): boolean {
  return (existsSync('/sys/module/kvm_intel') || existsSync('/sys/module/kvm_amd')) && !kvmUnavailable();
}

/** The backends to run a system guest on: the soft CPU, and KVM with VMX or SVM. */
export function backends(): [string, () => Backend][] {
  const list: [string, () => Backend][] = [['soft', () => SoftBackend.open()]];
  if (hardwareKvm()) list.push(['kvm', () => KvmBackend.open()]);
  return list;
}
