/**
 * The I/O buses, the legacy PC devices, the virtio devices (virtio/) and the network backends
 * (net/). Register constants stay in their device files (import them from there); this index
 * exports the classes and their types.
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
export { I8254Pit, PIT_HZ, type I8254PitOptions, type I8254PitState } from './i8254-pit.js';
export { Port61, type Port61Options, type Port61State, type Pit2Gate } from './port-61.js';
export {
  LocalApic, deliverToApics, type LocalApicOptions, type LocalApicState, type ApicMessage, type ApicDeliveryMode,
  type ApicDestMode, type ApicShorthand, type ApicTrigger, type ExtIntSource,
} from './local-apic.js';
export { IoApic, type IoApicOptions, type IoApicState } from './ioapic.js';
export { buildAcpiTables, type AcpiTableOptions, type AcpiTables, type VirtioMmioAcpi } from './acpi-tables.js';
export {
  AcpiPm, AcpiResetRegister, type AcpiPmOptions, type AcpiPmState, type AcpiResetRegisterOptions, type AcpiResetRegisterState,
} from './acpi-pm.js';
export { type GuestMemory, type RamRegion, RegionGuestMemory } from './virtio/guest-memory.js';
export { SplitQueue, Chain, QueueFault, type QueueFaultKind, type QueueLayout, type QueueFeatures } from './virtio/queue.js';
export { type VirtioDevice, type VirtioLink, VIRTIO_ID_NET, VIRTIO_ID_BLOCK, VIRTIO_ID_CONSOLE, VIRTIO_ID_RNG } from './virtio/device.js';
export { VirtioMmio, VIRTIO_MMIO_SIZE, virtioMmioCmdline, type VirtioMmioOptions, type VirtioMmioCounters } from './virtio/virtio-mmio.js';
export {
  type BlockBackend, type BlockCompletion, type BlockOutcome, MemoryBlockBackend, type MemoryBlockOptions, SECTOR_SIZE,
} from './virtio/block-backend.js';
export { FileBlockBackend, type FileBlockOptions } from './virtio/block-file.js';
export { VirtioBlk, type VirtioBlkCounters } from './virtio/virtio-blk.js';
export {
  VirtioConsole, ConsolePort, consoleRxQueue, type ConsolePortOptions, type VirtioConsoleOptions,
} from './virtio/virtio-console.js';
export { VirtioRng, type RandomSource } from './virtio/virtio-rng.js';
export { VirtioNet, type VirtioNetOptions, type VirtioNetCounters, NET_DEFAULT_MTU } from './virtio/virtio-net.js';
export { type NetBackend, type NetReceiver, MemoryNetBackend, NET_MAX_FRAME } from './net/net-backend.js';
export {
  type NicConfig, type UserNicConfig, type TapNicConfig, type HostForward, parseNicOption, parseMac, macBytes, defaultMac, checkNics, MAX_NICS,
} from './net/nic-config.js';
export { openNetBackend, type OpenNetOptions } from './net/open.js';
export { PasstBackend, type PasstOptions } from './net/passt.js';
export { TapBackend, type TapOptions } from './net/tap.js';
export { StreamNetBackend } from './net/frame-stream.js';
export { FrameRing, RingNetBackend, NetBridgeHost, createNetRings, type NetRings, type NetBridgeCounters } from './net/frame-ring.js';
