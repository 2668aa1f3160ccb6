/**
 * The few libc entry points tsvmm needs, bound once through koffi. Every wrapper returns the raw
 * result; callers turn a negative result into a SyscallError with `lastErrno()`.
 */
import koffi from 'koffi';

const libc = koffi.load('libc.so.6');

/** Host pointer (an opaque koffi handle); `addressOf` turns it into a number. */
export type HostPointer = unknown;

export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const SYS_gettid = 186;
export const SYS_tgkill = 234;

export const open = libc.func('int open(const char *path, int flags)') as (path: string, flags: number) => number;
export const close = libc.func('int close(int fd)') as (fd: number) => number;
/** ioctl with an integer argument (or none). */
export const ioctlInt = libc.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']) as (
  fd: number,
  request: number,
  arg: number,
) => number;
/** ioctl with a pointer to a buffer the kernel reads and/or writes. */
export const ioctlPtr = libc.func('ioctl', 'int', ['int', 'unsigned long', 'void *']) as (
  fd: number,
  request: number,
  arg: Uint8Array,
) => number;
export const mmap = libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)') as (
  addr: null,
  len: number,
  prot: number,
  flags: number,
  fd: number,
  off: number,
) => HostPointer;
export const munmap = libc.func('int munmap(void *addr, size_t len)') as (addr: HostPointer, len: number) => number;
export const eventfd = libc.func('int eventfd(unsigned int initval, int flags)') as (init: number, flags: number) => number;
export const getpid = libc.func('int getpid()') as () => number;

// flock(2): whole-file advisory locks, held by the open file description (virtio-blk images).
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const flock = libc.func('int flock(int fd, int op)') as (fd: number, op: number) => number;
// fallocate(2) modes (virtio-blk DISCARD and WRITE_ZEROES).
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;
export const fallocate = libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)') as (
  fd: number,
  mode: number,
  offset: number,
  len: number,
) => number;
const syscall3 = libc.func('syscall', 'long', ['long', 'long', 'long', 'long']) as (
  nr: number,
  a: number,
  b: number,
  c: number,
) => number;

export function gettid(): number {
  return syscall3(SYS_gettid, 0, 0, 0);
}

/** Sends `signal` to one thread of this process (used to kick a vCPU thread out of KVM_RUN). */
export function tgkill(tgid: number, tid: number, signal: number): number {
  return syscall3(SYS_tgkill, tgid, tid, signal);
}

export function lastErrno(): number {
  return koffi.errno();
}

/** mmap's failure value, (void *)-1. */
export function isMapFailed(p: HostPointer): boolean {
  return p === null || koffi.address(p) === 0xffffffffffffffffn;
}

/** The numeric address of a host pointer. User-space addresses on x86-64 are below 2^47, so a number holds them. */
export function addressOf(p: HostPointer): number {
  return Number(koffi.address(p));
}

/** A zero-copy ArrayBuffer over `len` bytes of host memory at `p`. */
export function viewOf(p: HostPointer, len: number): ArrayBuffer {
  return koffi.view(p as never, len) as ArrayBuffer;
}

/** A koffi pointer handle for a numeric address (for memory mapped by another thread of this process). */
export function pointerAt(address: number): HostPointer {
  // memmove(dst, src, 0) returns dst: a cast from an integer to a koffi pointer handle.
  return pointerCast(address, address, 0);
}

const pointerCast = libc.func('memmove', 'void *', ['uintptr_t', 'uintptr_t', 'size_t']) as (
  dst: number,
  src: number,
  n: number,
) => HostPointer;

/** A koffi pointer handle for the first byte of `bytes` (an ArrayBuffer or SharedArrayBuffer this process keeps alive). */
export function pointerOfBytes(bytes: Uint8Array): HostPointer {
  // memset(p, 0, 0) returns p.
  return memsetNone(bytes, 0, 0);
}

const memsetNone = libc.func('memset', 'void *', ['void *', 'int', 'size_t']) as (p: Uint8Array, c: number, n: number) => HostPointer;

const dlsym = libc.func('void *dlsym(void *handle, const char *name)') as (handle: null, name: string) => HostPointer;
const sigactionRaw = libc.func('int sigaction(int sig, void *act, void *old)') as (sig: number, act: Uint8Array, old: null) => number;
/** glibc's struct sigaction on x86-64: sa_handler, sa_mask (128 bytes), sa_flags, sa_restorer. */
const SIGACTION_SIZE = 152;

/** The signal tsvmm sends to a vCPU thread to kick it out of KVM_RUN (a real-time signal nobody else uses). */
export const KICK_SIGNAL = 40;
let kickHandlerInstalled = false;

/**
 * Installs a handler for KICK_SIGNAL that does nothing (libc's getpid, which ignores its argument
 * and is async-signal-safe). A handler, rather than SIG_IGN, is what makes a blocking KVM_RUN
 * return EINTR in the thread that receives the signal.
 */
export function installKickHandler(): void {
  if (kickHandlerInstalled) return;
  const act = new Uint8Array(SIGACTION_SIZE);
  new DataView(act.buffer).setBigUint64(0, BigInt(addressOf(dlsym(null, 'getpid'))), true);
  if (sigactionRaw(KICK_SIGNAL, act, null) < 0) throw new Error(`sigaction(${KICK_SIGNAL}) failed: errno ${lastErrno()}`);
  kickHandlerInstalled = true;
}
