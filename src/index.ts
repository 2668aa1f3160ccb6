/** The tsvmm library: the libnvmm-shaped hypervisor API and its backends. */
export { TsvmmError, SyscallError, type ErrorCode } from './common/errors.js';
export { HostMemory } from './memory/host-memory.js';
export { PAGE_SIZE } from './memory/page.js';
export { GuestClock, hostNs, type GuestClockOptions, type NowNs } from './common/clock.js';
export { Machine, Vcpu, type MachineCreateOptions, type VcpuConfig } from './nvmm/machine.js';
export { PROT, type Backend, type Capability, type StopHandle } from './nvmm/backend.js';
export { STATE, SEG, GPR, CR, DR, MSR, type X64State, type Segment, type SegmentAttrib } from './nvmm/state.js';
export type { VcpuExit, VcpuExitKind, IoExit, MemoryExit, DebugExit } from './nvmm/exit.js';
export { NO_DEBUG, DEBUG_SLOTS, type DebugConfig, type DebugReason, type Watchpoint, type WatchAccess } from './nvmm/debug.js';
export type { VcpuEvent } from './nvmm/event.js';
export { assistIo, assistMem, type IoAccess, type MemAccess } from './nvmm/assist.js';
export { stopVcpu } from './nvmm/stop.js';
export { KvmBackend } from './backends/kvm/kvm-backend.js';
export { openBackend, type Accel } from './backends/open.js';
export { VirtualMachine, type VmOptions, type VmExited, type VmEnd, type NicCounters, type NicOptions, type HostForwardOptions } from './vmm/virtual-machine.js';
export { machineConfig, ConfigError, type MachineConfig, type MachineOptions } from './vmm/config.js';
export type { GdbServer, GdbServerOptions } from './vmm/gdb/server.js';
export { Agent, AGENT_PORT_NAME, type AgentTransport, type AgentOptions, type ExecOptions, type ExecResult } from './vmm/agent.js';
