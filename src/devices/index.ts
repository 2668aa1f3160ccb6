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
export { I8259Pic, type I8259PicOptions, type I8259PicState } from './i8259-pic.js';
export { I8254Pit, PIT_HZ, monotonicNs, type I8254PitOptions, type I8254PitState } from './i8254-pit.js';
export { Port61, type Port61Options, type Port61State, type Pit2Gate } from './port-61.js';
export {
  LocalApic, deliverToApics, type LocalApicOptions, type LocalApicState, type ApicMessage, type ApicDeliveryMode,
  type ApicDestMode, type ApicShorthand, type ApicTrigger, type ExtIntSource,
} from './local-apic.js';
export { IoApic, type IoApicOptions, type IoApicState } from './ioapic.js';
export { buildAcpiTables, type AcpiTableOptions, type AcpiTables } from './acpi-tables.js';
export {
  AcpiPm, AcpiResetRegister, type AcpiPmOptions, type AcpiPmState, type AcpiResetRegisterOptions, type AcpiResetRegisterState,
} from './acpi-pm.js';
