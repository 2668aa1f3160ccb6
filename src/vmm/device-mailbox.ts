/**
 * How a vCPU thread that does not own the devices (an AP) reaches them: it writes its access
 * into a shared mailbox, kicks the device owner (the boot vCPU's thread) and waits; the owner
 * serves the mailbox when the kick makes its run() return. One mailbox per AP.
 */
import { assertNever } from '../common/errors.js';
import { assistIo, assistMem } from '../nvmm/assist.js';
import type { VcpuExit } from '../nvmm/exit.js';
import type { Vcpu } from '../nvmm/machine.js';
import { EXC_GP } from '../x86/exceptions.js';

const STATE = 0; // IDLE, REQUEST, DONE
const KIND = 1; // IO, MMIO, END, EOI
const ADDR_LO = 2;
const ADDR_HI = 3;
const SIZE = 4;
const WRITE = 5;
const DATA = 6; // 8 bytes
const INTS = 8;

export const MAILBOX = { IDLE: 0, REQUEST: 1, DONE: 2 } as const;
/** EOI: a level-triggered vector's EOI on an AP's local APIC (the soft CPU's), for the I/O APIC; `addr` is the vector. */
export const ACCESS = { IO: 1, MMIO: 2, END: 3, EOI: 4 } as const;
/** END codes an AP reports. */
export const AP_END = { TRIPLE_FAULT: 1, ERROR: 2 } as const;

/** Sends one access through an AP's mailbox (DeviceMailbox.call with the AP's kick). */
export type Forward = (kind: number, addr: number, size: number, write: boolean, bytes: Uint8Array) => boolean;

/**
 * What an AP's run loop does with an exit, on either backend: port I/O and MMIO go to the
 * devices' thread through `forward`, an MSR the backend left to the VMM is #GP, the rest needs
 * nothing. Returns 'run' to go on, 'halted' (the loop decides: the soft AP waits for an
 * interrupt, on KVM the in-kernel APIC waits and a halted exit is an error), or the AP_END code
 * that ends the machine.
 */
export function serveApExit(vcpu: Vcpu, exit: VcpuExit, forward: Forward): 'run' | 'halted' | number {
  switch (exit.kind) {
    case 'io':
      assistIo(vcpu, (io) => void forward(ACCESS.IO, io.port, io.size, !io.in, io.data));
      return 'run';
    case 'memory':
      assistMem(vcpu, (m) => void forward(ACCESS.MMIO, m.gpa, m.size, m.write, m.data));
      return 'run';
    case 'rdmsr':
    case 'wrmsr':
      vcpu.inject({ type: 'exception', vector: EXC_GP, errorCode: 0 });
      return 'run';
    case 'shutdown':
      return AP_END.TRIPLE_FAULT;
    case 'invalid':
      return AP_END.ERROR;
    case 'halted':
      return 'halted';
    case 'stopped': case 'none': case 'interruptWindow': case 'nmiWindow': case 'tprChanged': case 'debug': case 'cpuid':
      return 'run';
    default:
      return assertNever(exit, 'exit');
  }
}

export interface DeviceAccess {
  kind: number;
  /** Port, guest-physical address, or END code. */
  addr: number;
  size: number;
  write: boolean;
  data: Uint8Array;
}

export class DeviceMailbox {
  readonly buffer: SharedArrayBuffer;
  private readonly ints: Int32Array;
  private readonly data: Uint8Array;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(INTS * 4)) {
    this.buffer = buffer;
    this.ints = new Int32Array(buffer);
    this.data = new Uint8Array(buffer, DATA * 4, 8);
  }

  /** AP side: posts an access and waits until it is served or `abandoned()` says to give up. */
  call(access: DeviceAccess, kick: () => void, abandoned: () => boolean): boolean {
    const i = this.ints;
    i[KIND] = access.kind;
    i[ADDR_LO] = access.addr % 0x100000000;
    i[ADDR_HI] = Math.floor(access.addr / 0x100000000);
    i[SIZE] = access.size;
    i[WRITE] = access.write ? 1 : 0;
    this.data.set(access.data.subarray(0, 8));
    Atomics.store(i, STATE, MAILBOX.REQUEST);
    kick();
    while (Atomics.load(i, STATE) === MAILBOX.REQUEST) {
      Atomics.wait(i, STATE, MAILBOX.REQUEST, 50);
      if (abandoned()) return false;
    }
    if (!access.write) access.data.set(this.data.subarray(0, access.data.length));
    Atomics.store(i, STATE, MAILBOX.IDLE);
    return true;
  }

  /** Owner side: serves a pending access with `serve`, if there is one. */
  serve(serve: (access: DeviceAccess) => void): void {
    const i = this.ints;
    if (Atomics.load(i, STATE) !== MAILBOX.REQUEST) return;
    const size = i[SIZE]!;
    serve({
      kind: i[KIND]!,
      addr: (i[ADDR_LO]! >>> 0) + (i[ADDR_HI]! >>> 0) * 0x100000000,
      size,
      write: i[WRITE] === 1,
      data: this.data.subarray(0, Math.min(size, 8)),
    });
    Atomics.store(i, STATE, MAILBOX.DONE);
    Atomics.notify(i, STATE);
  }
}
