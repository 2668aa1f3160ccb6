// The soft CPU serving a VMM's devices inline (Vcpu.setInlineDevices): port I/O and MMIO without
// exits, interrupts taken from the controller at block boundaries, timers ticked from the run loop.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftBackend } from '../../src/backends/soft/soft-backend.js';
import type { NowNs } from '../../src/common/clock.js';
import type { InlineDevices } from '../../src/nvmm/backend.js';
import { idtGuest, imageQword } from '../helpers/idt-guest.js';
import { GPR, STATE } from '../../src/nvmm/state.js';
import { enterReal16, runToExit, showExit, withMachine, withRamMachine } from '../helpers/machine.js';
import { assembleSnippet, guestImage, needsNasm } from '../helpers/nasm.js';

/** A one-shot timer on port 0x40 (due 20 µs after the write) in front of a one-line interrupt controller. */
class OneShot implements InlineDevices {
  constructor(private readonly now: NowNs) {}
  due = Infinity;
  line = false;
  readonly writes: [number, number][] = [];
  io(port: number, _size: number, isIn: boolean, value: number): number {
    if (isIn) return 0xff;
    this.writes.push([port, value]);
    if (port === 0x40) this.due = this.now() + 20_000;
    return 0;
  }
  interruptPending(): boolean { return this.line; }
  acknowledge(): number { this.line = false; return 0x20; }
  tick(now: number): number {
    if (now >= this.due) { this.due = Infinity; this.line = true; }
    return this.due;
  }
  ended(): boolean { return false; }
}

test('soft: a one-shot timer armed by an inline port write fires (the CPU re-reads the deadline after I/O)', needsNasm, () => {
  const image = guestImage('soft/inline-timer.asm');
  withMachine(SoftBackend.open(), (machine) => {
    assert.equal(machine.capability.inlineDevices, true);
    const vcpu = idtGuest(machine, image, [[0x20, imageQword(image, 8)]]);
    const dev = new OneShot(machine.clock.now);
    vcpu.setInlineDevices(dev);
    const exit = vcpu.run();
    assert.equal(exit.kind, 'halted', `ended with ${exit.kind}`);
    assert.deepEqual(dev.writes, [[0x40, 1], [0x20, 0x20], [0x40, 1], [0x20, 0x20], [0x40, 1], [0x20, 0x20], [0xe0, 3]]);
  });
});

test('setInlineDevices is refused by a backend without the capability', () => {
  withMachine(SoftBackend.open(), (machine) => {
    const vcpu = machine.createVcpu(0);
    (machine.capability as { inlineDevices?: boolean }).inlineDevices = false;
    assert.throws(() => vcpu.setInlineDevices(null), { code: 'TSVMM_UNSUPPORTED' });
  });
});

/** Inline devices that serve MMIO and record it: a read returns the low bytes of 0x8877665544332211 + the offset in the page. */
class MmioRecorder implements InlineDevices {
  readonly accesses: [gpa: number, size: number, write: boolean, value: bigint][] = [];
  readonly ports: [number, number][] = [];
  io(port: number, _size: number, isIn: boolean, value: number): number {
    if (!isIn) this.ports.push([port, value]);
    return 0;
  }
  interruptPending(): boolean { return false; }
  acknowledge(): number { return 0; }
  tick(): number { return Infinity; }
  ended(): boolean { return false; }
  mmio(gpa: number, data: Uint8Array, write: boolean): void {
    if (!write) {
      const v = 0x8877665544332211n + BigInt(gpa & 0xfff);
      for (let i = 0; i < data.length; i++) data[i] = Number((v >> BigInt(8 * i)) & 0xffn);
    }
    let value = 0n;
    for (let i = data.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(data[i]!);
    this.accesses.push([gpa, data.length, write, value]);
  }
}

/** Real mode at 0x1000 with 64 KiB of RAM; ES = 0x2000 points at guest-physical 0x20000, where no RAM is. */
const MMIO_GUEST = `
  mov ax, 0x2000
  mov es, ax
  mov byte [es:0], 0x5a
  mov word [es:2], 0x1234
  mov dword [es:4], 0xdeadbeef
  mov ebx, [es:8]
  add dword [es:0x10], 5
  movzx cx, byte [es:0x20]
  mov ax, 0xabcd
  mov [es:0xfff], ax
  mov al, 0x77
  out 0xe0, al
  hlt
`;

test('soft: MMIO where no RAM is goes to the inline devices at its size, without an exit; read-modify-write reads then writes', needsNasm, () => {
  withRamMachine(SoftBackend.open(), 0x10000, ({ machine, vcpu, ram }) => {
    ram.set(assembleSnippet(MMIO_GUEST, 16), 0x1000);
    enterReal16(vcpu, 0x1000);
    vcpu.setState(STATE.ALL);
    const dev = new MmioRecorder();
    vcpu.setInlineDevices(dev);
    const exit = runToExit(vcpu);
    assert.equal(exit.kind, 'halted', showExit(exit));
    assert.deepEqual(dev.accesses, [
      [0x20000, 1, true, 0x5an],
      [0x20002, 2, true, 0x1234n],
      [0x20004, 4, true, 0xdeadbeefn],
      [0x20008, 4, false, 0x44332219n],
      [0x20010, 4, false, 0x44332221n],
      [0x20010, 4, true, 0x44332226n],
      [0x20020, 1, false, 0x31n],
      // A word across a page boundary comes as its two bytes.
      [0x20fff, 1, true, 0xcdn],
      [0x21000, 1, true, 0xabn],
    ]);
    assert.deepEqual(dev.ports, [[0xe0, 0x77]]);
    const g = vcpu.getState(STATE.GPRS).gprs;
    assert.equal(g[GPR.RBX]! & 0xffffffffn, 0x44332219n);
    assert.equal(g[GPR.RCX]! & 0xffffn, 0x31n);
    void machine;
  });
});

test('soft: without an inline MMIO handler the same access exits to the VMM; a fetch from MMIO exits either way', needsNasm, () => {
  withRamMachine(SoftBackend.open(), 0x10000, ({ vcpu, ram }) => {
    ram.set(assembleSnippet(MMIO_GUEST, 16), 0x1000);
    enterReal16(vcpu, 0x1000);
    vcpu.setState(STATE.ALL);
    const dev = new MmioRecorder();
    vcpu.setInlineDevices({ io: dev.io.bind(dev), interruptPending: () => false, acknowledge: () => 0, tick: () => Infinity, ended: () => false });
    const exit = runToExit(vcpu);
    assert.equal(exit.kind, 'memory', showExit(exit));
    assert.equal(exit.kind === 'memory' && exit.gpa, 0x20000);
    assert.equal(exit.kind === 'memory' && exit.prot, 'write');
  });
  withRamMachine(SoftBackend.open(), 0x10000, ({ vcpu, ram }) => {
    ram.set(assembleSnippet('jmp 0x2000:0', 16), 0x1000);
    enterReal16(vcpu, 0x1000);
    vcpu.setState(STATE.ALL);
    const dev = new MmioRecorder();
    vcpu.setInlineDevices(dev);
    const exit = runToExit(vcpu);
    assert.equal(exit.kind, 'memory', showExit(exit));
    assert.equal(exit.kind === 'memory' && exit.prot, 'exec');
    assert.deepEqual(dev.accesses, []);
  });
});
