/**
 * One error class for everything tsvmm rejects. `code` is stable (scripts and tests match on it);
 * the message names the offending value.
 */
export type ErrorCode =
  | 'TSVMM_NO_KVM' // /dev/kvm missing, not permitted, or lacking a capability we need
  | 'TSVMM_KVM_API' // KVM API version mismatch
  | 'TSVMM_SYSCALL' // a system call or ioctl failed
  | 'TSVMM_BAD_ARGUMENT' // invalid argument to an API call (bad size, alignment, flags)
  | 'TSVMM_GPA_OVERLAP' // mapGpa over an existing mapping
  | 'TSVMM_GPA_UNMAPPED' // unmapGpa / gpaToHva of an address with no mapping
  | 'TSVMM_HVA_UNMAPPED' // mapGpa from host memory that was never registered with mapHva
  | 'TSVMM_HVA_BUSY' // unmapHva of a host range still mapped into the guest
  | 'TSVMM_BAD_EVENT' // inject() of an event NVMM would refuse
  | 'TSVMM_DESTROYED' // use of a destroyed machine or vCPU
  | 'TSVMM_BUSY' // the vCPU is already running, or an id is taken
  | 'TSVMM_LIMIT' // a capability limit (vCPUs, RAM) was exceeded
  | 'TSVMM_UNSUPPORTED' // the backend cannot do what was asked
  | 'TSVMM_GVA_FAULT' // gvaToGpa could not translate (the page walk failed)
  | 'TSVMM_ASSIST' // assistIo/assistMem met an exit or instruction it cannot emulate
  | 'TSVMM_BAD_KERNEL' // a guest image is malformed
  | 'TSVMM_BAD_DISK' // a disk image is missing, unreadable or not a whole number of sectors
  | 'TSVMM_NO_MODULE' // a kernel module (or one it depends on) is not in the module tree
  | 'TSVMM_BAD_MODULE' // a kernel module is malformed, for another kernel release, or its dependencies loop or run too deep
  | 'TSVMM_TIMEOUT' // a guest operation (an agent exec) did not finish in its time
  | 'TSVMM_AGENT_PROTOCOL' // the guest agent's replies break the framing (docs/agent-protocol.md)
  | 'TSVMM_AGENT_CLOSED' // the guest agent's channel closed, or the agent restarted, before a reply
  | 'TSVMM_USAGE' // bad command line
  | 'TSVMM_TOOL_MISSING' // an external tool (nasm, gcc, passt) needed for this operation is absent
  | 'TSVMM_NET_BACKEND' // a network backend could not start or failed (passt exited, a TAP device unusable)
  | 'TSVMM_NET_PERMISSION' // the host refused a network device (no CAP_NET_ADMIN for a TAP, /dev/net/tun not accessible)
  | 'TSVMM_SNAPSHOT_CORRUPT' // a snapshot file is malformed: bad magic, checksum, section, size or content (docs/snapshot-format.md)
  | 'TSVMM_SNAPSHOT_VERSION' // a snapshot file of a format version this tsvmm does not read
  | 'TSVMM_SNAPSHOT_TRUNCATED' // a snapshot file ends before its last section
  | 'TSVMM_SNAPSHOT_MISMATCH'; // a snapshot does not fit where it is restored (a drive changed, a backend cannot take its state)

export class TsvmmError extends Error {
  readonly code: ErrorCode;
  readonly detail: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, detail?: Record<string, unknown>) {
    super(message);
    this.name = 'TsvmmError';
    this.code = code;
    this.detail = detail;
  }
}

/** A failed system call or ioctl: carries the call, errno and its symbolic name. */
export class SyscallError extends TsvmmError {
  readonly call: string;
  readonly errno: number;

  constructor(call: string, errno: number, code: ErrorCode = 'TSVMM_SYSCALL') {
    super(code, `${call} failed: ${errnoName(errno)} (errno ${errno})`, { call, errno });
    this.name = 'SyscallError';
    this.call = call;
    this.errno = errno;
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 4: 'EINTR', 5: 'EIO', 6: 'ENXIO', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM',
  13: 'EACCES', 14: 'EFAULT', 16: 'EBUSY', 17: 'EEXIST', 19: 'ENODEV', 22: 'EINVAL', 24: 'EMFILE',
  25: 'ENOTTY', 28: 'ENOSPC', 38: 'ENOSYS', 95: 'EOPNOTSUPP',
};

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno${errno}`;
}

/** A bug in tsvmm itself (never guest misbehaviour, never bad input). */
export function assert(cond: unknown, what: string): asserts cond {
  if (!cond) throw new Error(`tsvmm assertion failed: ${what}`);
}

export function assertNever(x: never, what = 'value'): never {
  throw new Error(`tsvmm assertion failed: unexpected ${what} ${JSON.stringify(x)}`);
}
