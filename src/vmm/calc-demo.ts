/**
 * The calc demo: a real-mode guest (guests/calc) that evaluates expressions typed on COM1.
 * The smallest complete machine: RAM, a 16550 UART with its receive interrupt, an i8042 whose
 * reset command ends the run. Interrupt delivery is the simplest possible: the guest waits in
 * HLT, and when the UART's IRQ line is high the vCPU gets the IRQ's real-mode vector.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { assertNever } from '../common/errors.js';
import { GUESTS_DIR } from '../common/nasm.js';
import { PortBus } from '../devices/bus.js';
import { I8042 } from '../devices/i8042.js';
import { RecordingIrqLine } from '../devices/irq.js';
import { Uart8250 } from '../devices/uart-8250.js';
import { HostMemory } from '../memory/host-memory.js';
import { assistIo, assistMem } from '../nvmm/assist.js';
import { PROT, type Backend } from '../nvmm/backend.js';
import { Machine } from '../nvmm/machine.js';
import { GPR, SEG, STATE } from '../nvmm/state.js';
import { IRQS, PORTS, realModeVector } from './layout.js';

export const CALC_IMAGE = join(GUESTS_DIR, 'calc', 'calc.bin');
const LOAD_ADDRESS = 0x1000;
const RAM_SIZE = 0x10000;

export interface CalcDemoOptions {
  backend: Backend;
  /** Bytes typed by the user (stdin, a socket, a test's stream). */
  input: AsyncIterable<Uint8Array | string>;
  /** Where the guest's serial output goes, in chunks, each time the guest waits and at the end. */
  output: (bytes: Uint8Array) => void;
  image?: Uint8Array;
}

export type CalcDemoEnd =
  | { reason: 'reset' } // the guest quit (i8042 reset)
  | { reason: 'input-ended' } // the input ended while the guest waited for more
  | { reason: 'shutdown' }
  | { reason: 'invalid'; detail: string };

export async function runCalcDemo(opts: CalcDemoOptions): Promise<CalcDemoEnd> {
  const image = opts.image ?? new Uint8Array(readFileSync(CALC_IMAGE));
  const machine = new Machine(opts.backend);
  const ram = HostMemory.allocate(RAM_SIZE);
  try {
    ram.bytes.set(image, LOAD_ADDRESS);
    machine.mapHva(ram);
    machine.mapGpa(0, ram.hva, RAM_SIZE, PROT.ALL);

    const irq4 = new RecordingIrqLine();
    let resetRequested = false;
    const pending: number[] = [];
    const out: number[] = [];
    const flush = () => {
      if (out.length) opts.output(Uint8Array.from(out.splice(0)));
    };
    const uart = new Uart8250({ irq: irq4, tx: (byte) => void out.push(byte) });
    const feed = () => {
      if (pending.length) pending.splice(0, uart.receive(pending));
    };
    uart.onRxSpace = feed;
    const ports = new PortBus();
    ports.register(PORTS.COM1.base, PORTS.COM1.length, 'com1', uart);
    const i8042 = new I8042({ onReset: () => (resetRequested = true) });
    ports.register(PORTS.I8042_DATA.base, PORTS.I8042_DATA.length, 'i8042', i8042);
    ports.register(PORTS.I8042_COMMAND.base, PORTS.I8042_COMMAND.length, 'i8042-command', i8042.commandPort);

    // Input arrives on the event loop, which runs while the guest is halted waiting for it.
    const input = { ended: false, wake: undefined as (() => void) | undefined };
    void (async () => {
      for await (const chunk of opts.input) {
        pending.push(...(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
        input.wake?.();
      }
      input.ended = true;
      input.wake?.();
    })();

    const vcpu = machine.createVcpu(0);
    const s = vcpu.getState(STATE.ALL);
    s.segs[SEG.CS] = { ...s.segs[SEG.CS]!, selector: 0, base: 0n };
    s.gprs[GPR.RIP] = BigInt(LOAD_ADDRESS);
    vcpu.setState(STATE.ALL);

    for (;;) {
      const end = await step();
      if (end) {
        flush();
        return end;
      }
    }

    async function step(): Promise<CalcDemoEnd | undefined> {
      const exit = vcpu.run();
      switch (exit.kind) {
        case 'io':
          assistIo(vcpu, (io) => ports.access(io));
          if (resetRequested) return { reason: 'reset' };
          return undefined;
        case 'halted':
          feed();
          flush();
          while (!irq4.level) {
            if (input.ended && pending.length === 0) return { reason: 'input-ended' };
            await new Promise<void>((resolve) => (input.wake = resolve));
            input.wake = undefined;
            feed();
          }
          vcpu.inject({ type: 'interrupt', vector: realModeVector(IRQS.COM1) });
          return undefined;
        case 'memory':
          assistMem(vcpu, (mem) => mem.write || mem.data.fill(0xff));
          return undefined;
        case 'shutdown':
          return { reason: 'shutdown' };
        case 'invalid':
          return { reason: 'invalid', detail: exit.reason };
        case 'none':
          return undefined;
        case 'rdmsr': case 'wrmsr': case 'cpuid': case 'interruptWindow': case 'nmiWindow':
        case 'tprChanged': case 'debug': case 'stopped':
          return { reason: 'invalid', detail: `unexpected ${exit.kind} exit` };
        default:
          return assertNever(exit, 'exit');
      }
    }
  } finally {
    machine.destroy();
    ram.free();
  }
}
