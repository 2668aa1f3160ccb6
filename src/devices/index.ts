/**
 * The I/O buses and the legacy PC devices. Register constants stay in their device files
 * (import them from there); this index exports the classes and their types.
 */
export { type IrqLine, RecordingIrqLine, NO_IRQ } from './irq.js';
export {
  type PortDevice, type MmioDevice, type BusRange, type BusOptions, PortBus, MmioBus, readLe, writeLe,
} from './bus.js';
export { Uart8250, type Uart8250Options, type Uart8250State } from './uart-8250.js';
export { I8042, type I8042Options, type I8042State } from './i8042.js';
export { Mc146818Rtc, type Mc146818RtcOptions, type Mc146818RtcState } from './mc146818-rtc.js';
export { DebugExit, type DebugExitOptions } from './debug-exit.js';
export { Port80, type Port80State } from './port-0x80.js';
