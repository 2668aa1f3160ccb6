/**
 * The few libc entry points tsvmm needs, bound through koffi. Every wrapper returns the raw
 * result; callers turn a negative result into a SyscallError with `lastErrno()`.
 *
 * libc is loaded by the first call in each thread, not when this module is imported: koffi gives
 * every thread that loads a library a call stack and a heap of its own (about 3 MiB in three
 * mappings) and never gives them back when the thread ends. A machine on the soft backend imports
 * this module in its worker thread but calls nothing, so its thread leaves nothing behind.
 */
import koffi from 'koffi';

type Library = ReturnType<typeof koffi.load>;
let loaded: Library | undefined;

/** A libc function bound on its first call (loading libc in this thread then). */
function lazy<F>(declare: (libc: Library) => unknown): F {
  type Fn = (...args: unknown[]) => unknown;
  let f: Fn | undefined;
  return ((...args: unknown[]) => (f ??= declare((loaded ??= koffi.load('libc.so.6'))) as Fn)(...args)) as F;
}

/** Host pointer (an opaque koffi handle); `addressOf` turns it into a number. */
export type HostPointer = unknown;

export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const SYS_gettid = 186;
export const SYS_tgkill = 234;

export const open = lazy<(path: string, flags: number) => number>((libc) => libc.func('int open(const char *path, int flags)'));
export const close = lazy<(fd: number) => number>((libc) => libc.func('int close(int fd)'));
/** ioctl with an integer argument (or none). */
export const ioctlInt = lazy<(
  fd: number,
  request: number,
  arg: number,
) => number>((libc) => libc.func('ioctl', 'int', ['int', 'unsigned long', 'unsigned long']));
/** ioctl with a pointer to a buffer the kernel reads and/or writes. */
export const ioctlPtr = lazy<(
  fd: number,
  request: number,
  arg: Uint8Array,
) => number>((libc) => libc.func('ioctl', 'int', ['int', 'unsigned long', 'void *']));
export const mmap = lazy<(
  addr: null,
  len: number,
  prot: number,
  flags: number,
  fd: number,
  off: number,
) => HostPointer>((libc) => libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long off)'));
/** mmap at a fixed address (with MAP_FIXED: replaces what is mapped there, atomically). */
export const mmapAt = lazy<(
  addr: number,
  len: number,
  prot: number,
  flags: number,
  fd: number,
  off: number,
) => HostPointer>((libc) => libc.func('mmap', 'void *', ['uintptr_t', 'size_t', 'int', 'int', 'int', 'long']));
export const munmap = lazy<(addr: HostPointer, len: number) => number>((libc) => libc.func('int munmap(void *addr, size_t len)'));
/**
 * eventfd(2) (flags EFD_* above): a descriptor one thread writes to wake another out of poll(2),
 * the hand-off DESIGN.md's performance model names for host-side I/O. Nothing calls it yet: it is
 * there for the host I/O backends (network) that wait in poll.
 */
export const eventfd = lazy<(init: number, flags: number) => number>((libc) => libc.func('int eventfd(unsigned int initval, int flags)'));
export const getpid = lazy<() => number>((libc) => libc.func('int getpid()'));

// flock(2): whole-file advisory locks, held by the open file description (virtio-blk images).
export const LOCK_SH = 1;
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const flock = lazy<(fd: number, op: number) => number>((libc) => libc.func('int flock(int fd, int op)'));
// fallocate(2) modes (virtio-blk DISCARD and WRITE_ZEROES).
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;
export const fallocate = lazy<(fd: number, mode: number, offset: number, len: number) => number>(
  (libc) => libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)'),
);
// Sockets and plain descriptor I/O (the network backends: passt's socket pair, a TAP device).
export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
export const SOCK_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;
export const EAGAIN = 11;
/** socketpair(2): the two descriptors are written into `sv`. */
export const socketpair = lazy<(domain: number, type: number, protocol: number, sv: Int32Array) => number>(
  (libc) => libc.func('int socketpair(int domain, int type, int protocol, void *sv)'),
);
export const read = lazy<(fd: number, buf: Uint8Array, count: number) => number>((libc) => libc.func('long read(int fd, void *buf, size_t count)'));
export const write = lazy<(fd: number, buf: Uint8Array, count: number) => number>((libc) => libc.func('long write(int fd, void *buf, size_t count)'));

type AsyncFn = { async: (...args: unknown[]) => void };
let pollFn: AsyncFn | undefined;
/**
 * poll(2) on `count` struct pollfd entries in `fds` (8 bytes each: fd, events, revents), run on
 * one of koffi's worker threads so that the caller's event loop goes on; resolves with poll's
 * result. Buffers cross to that thread by copy: revents is not read back, so a caller that
 * polls several descriptors tries each (non-blocking) when the promise resolves.
 */
export function pollAsync(fds: Uint8Array, count: number, timeoutMs: number): Promise<number> {
  pollFn ??= (loaded ??= koffi.load('libc.so.6')).func('int poll(void *fds, unsigned long nfds, int timeout)') as unknown as AsyncFn;
  const fn = pollFn;
  return new Promise((resolve, reject) => {
    fn.async(fds, count, timeoutMs, (err: unknown, result: number) => (err ? reject(err) : resolve(result)));
  });
}

const syscall3 = lazy<(
  nr: number,
  a: number,
  b: number,
  c: number,
) => number>((libc) => libc.func('syscall', 'long', ['long', 'long', 'long', 'long']));

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

const pointerCast = lazy<(
  dst: number,
  src: number,
  n: number,
) => HostPointer>((libc) => libc.func('memmove', 'void *', ['uintptr_t', 'uintptr_t', 'size_t']));

/** The address of the first byte of `bytes` (memory this process keeps alive, such as a SharedArrayBuffer's). */
export function addressOfBytes(bytes: Uint8Array): number {
  return Number(koffi.address(bytes));
}

/** A zero-copy ArrayBuffer over the memory of `bytes` (its own object, independent of `bytes.buffer`). */
export function viewOfBytes(bytes: Uint8Array): ArrayBuffer {
  return koffi.view(bytes, bytes.length) as ArrayBuffer;
}

const dlsym = lazy<(handle: null, name: string) => HostPointer>((libc) => libc.func('void *dlsym(void *handle, const char *name)'));
const sigactionRaw = lazy<(sig: number, act: Uint8Array, old: null) => number>((libc) => libc.func('int sigaction(int sig, void *act, void *old)'));
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
