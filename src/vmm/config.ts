/**
 * The machine's configuration: one plain-data description of the machine, its defaults and its
 * checks, in this file only.
 *
 * An option travels as one field of MachineConfig from where it is given to the code that uses
 * it: the CLI (`tsvmm run`) only turns text into values (and names a refused value by its flag);
 * machineConfig() fills in the defaults and checks every value, for the CLI and for
 * VirtualMachine.create alike, so that both refuse the same things with the same codes (see
 * docs/architecture.md, "How a machine option travels"); the config is posted as it is to the
 * board's thread (it is plain data: strings, numbers, booleans and plain objects, which a
 * structured clone copies unchanged), where the backend is opened from it and the board, its
 * devices and the loaders read their fields from it. What is not configuration (the shared rings
 * and control words, stop handles, callbacks, the opened backend) travels beside it, never in it.
 *
 * Adding an option is: its field in MachineConfig, its rule in RULES (a default if it has one,
 * and its check; the compiler asks for a rule for every field), and the code that uses it.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { ACCELS, CPU_MODEL_NAMES, type Accel, type CpuModelName } from '../backends/open.js';
import { MAX_PROFILE_HZ } from '../nvmm/profile.js';
import { hex } from '../common/bits.js';
import { TsvmmError } from '../common/errors.js';
import { defaultKernelCacheDir } from '../loader/kernel-cache.js';
import type { EntryMode } from '../loader/load-result.js';
import { checkIfname, checkNics, defaultMac, parseMac, type HostForward, type NicConfig } from '../devices/net/nic-config.js';
import { MAX_BOARD_NICS, MAX_CPUS, MAX_DRIVES } from './layout.js';

export { MAX_BOARD_NICS, MAX_CPUS, MAX_DRIVES } from './layout.js';
export type { HostForward, NicConfig, TapNicConfig, UserNicConfig } from '../devices/net/nic-config.js';

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/** Guest RAM when none is given. */
export const DEFAULT_MEMORY = 256 * MIB;
/** The board needs 2 MiB (its tables, the kernel's low memory). */
export const MIN_MEMORY = 2 * MIB;
/** Both backends map guest-physical memory up to 128 GiB; RAM past the 3 GiB MMIO hole moves above 4 GiB. */
export const MAX_MEMORY = 127 * GIB;
/** Guest RAM is mapped in whole pages. */
const MEMORY_GRANULE = 4 * KIB;
/** setTimeout's limit (2^31 - 1 ms): a longer delay fires at once. */
export const MAX_TIMEOUT_MS = 0x7fff_ffff;
/** Flat images load below 4 GiB (below the MMIO hole, in fact: the loader checks that). */
const MAX_FLAT_ADDRESS = 0xffff_ffff;
/** A profile may leave out at most this much of the start (about 11.6 days). */
const MAX_PROFILE_DELAY_MS = 1e9;
export const ENTRY_MODES: readonly EntryMode[] = ['real16', 'protected32', 'long64'];

/** A kernel loaded as a flat binary. */
export interface FlatImage {
  /** Where the image goes, guest-physical. */
  loadAddr: number;
  /** The CPU mode it is entered in, at loadAddr. */
  mode: EntryMode;
}

/** Sampling the boot vCPU (the soft backend's profiler). */
export interface ProfileConfig {
  /** Samples per second (default: the profiler's, 1000). */
  hz?: number;
  /** Milliseconds from the start before the first sample (default 0). */
  delayMs?: number;
}

/** A virtio-blk disk over a raw image file. */
export interface DriveConfig {
  /** The image: a regular file, a whole number of 512-byte sectors. */
  file: string;
  /** The guest may not write it (default false); the image is then locked shared, not exclusive. */
  readonly: boolean;
  /** The serial number the guest reads (/sys/block/vdX/serial), at most 20 bytes of printable ASCII. */
  serial?: string;
}

/** A forward as a program gives it: TCP and every host address unless told. */
export type HostForwardOptions = Pick<HostForward, 'hostPort' | 'guestPort'> & Partial<HostForward>;

/**
 * A network card as a program gives it (VirtualMachine.create's `nics`): the MAC may be left out
 * (NIC number n gets 02:74:73:76:6d:nn, nic-config.ts defaultMac), and so may a user NIC's
 * forwards. The configuration holds the NicConfig it becomes.
 */
export type NicOptions =
  | { kind: 'user'; mac?: string; hostForwards?: HostForwardOptions[] }
  | { kind: 'tap'; ifname: string; mac?: string };

/** Where the guest's console is: the 16550 (ttyS0) or a virtio console (hvc0). */
export type ConsoleKind = 'serial' | 'virtio';
export const CONSOLE_KINDS: readonly ConsoleKind[] = ['serial', 'virtio'];

/** What a virtio-blk serial holds (virtio 1.2 §5.2.6: GET_ID returns at most 20 bytes). */
const MAX_SERIAL_BYTES = 20;

/** The machine, as the board builds it. Every field has been checked (see machineConfig). */
export interface MachineConfig {
  /** The kernel image's path: a bzImage, a multiboot kernel, an ELF vmlinux with a PVH note, or (with `flat`) a flat binary. */
  kernel: string;
  /** The initial ramdisk's path (for multiboot: the first module). */
  initrd?: string;
  /** The kernel command line (default empty). */
  cmdline: string;
  /** Guest RAM in bytes, whole 4 KiB pages from 2 MiB to 127 GiB (default 256 MiB). */
  memory: number;
  /** vCPUs, 1 to MAX_CPUS (default 1); the first boots, guests find the others in the MP and ACPI tables. */
  cpus: number;
  /** The backend (default auto: KVM where it runs guest kernels natively, else the soft CPU). */
  accel: Accel;
  /** The soft CPU's model: `max` (its default, everything it implements) or `qemu64`. */
  cpu?: CpuModelName;
  /** Load `kernel` as a flat binary. */
  flat?: FlatImage;
  /** For a bzImage: decompress the kernel on the host and enter it through PVH (default false). */
  pvh: boolean;
  /**
   * With `pvh`: the directory where decompressed kernels are kept, so that the next boot of the
   * same bzImage skips decompressing (default: $TSVMM_CACHE_DIR, else $XDG_CACHE_HOME/tsvmm,
   * else ~/.cache/tsvmm); false keeps none.
   */
  kernelCache: string | false;
  /**
   * Soft backend: serve port I/O, interrupts and timers inside the CPU loop (default true); false
   * takes an exit for each, as NVMM's VMMs do (slower; it keeps that path tested).
   */
  inlineDevices: boolean;
  /**
   * End the run with `timeout` after this many milliseconds (more than 0, at most MAX_TIMEOUT_MS).
   * Without one, a guest halted with interrupts off (which nothing can wake) ends the machine with
   * TSVMM_GUEST where the board can see it (soft); with one, it waits for the timeout, as on KVM.
   */
  timeoutMs?: number;
  /** Print the first N executed instructions to standard error (soft backend). */
  traceCpu?: number;
  /** Sample the boot vCPU (soft backend): VmExited.profile. */
  profile?: ProfileConfig;
  /** virtio-blk disks, in order: the guest's /dev/vda, /dev/vdb... (at most MAX_DRIVES). */
  drives?: DriveConfig[];
  /**
   * The console the host's console stream is wired to (default `serial`): with `virtio`, a
   * virtio console whose first port (the guest's hvc0, for `console=hvc0`) takes the host's
   * input and writes where COM1 writes; COM1 stays, its output in the same stream.
   */
  console: ConsoleKind;
  /** A virtio entropy device fed from the host's CSPRNG (default false, as in QEMU and Firecracker). */
  rng: boolean;
  /**
   * A virtio console port named org.tsvmm.agent for the guest's exec agent (default false): the
   * host runs commands in the guest through it (VirtualMachine.exec, `tsvmm run --exec`).
   */
  agent: boolean;
  /**
   * virtio-net cards, in order: the guest's eth0, eth1... (at most MAX_BOARD_NICS). `user`: passt
   * (user-mode networking, DHCP, `hostForwards` from host ports to the guest's); `tap`: the host's
   * TAP interface `ifname`. The machine starts passt or opens the TAP when it is created
   * (VirtualMachine.create) and lets go of it when it ends.
   */
  nics?: NicConfig[];
}

/** What a caller gives: the kernel, and any of the rest (the others take their defaults). */
export type MachineOptions = Pick<MachineConfig, 'kernel'> & Partial<Omit<MachineConfig, 'nics'>> & { nics?: NicOptions[] };

/**
 * A configuration value the machine cannot take. `option` names the field of MachineConfig,
 * `field` the value within it ('flat.loadAddr'); the message is the field, its value and the
 * `problem` ("cpus 65 is too large: at most 64 vCPUs"), so that a caller that knows the value
 * under another name (the CLI's `--smp 65`) can say it with that name.
 */
export class ConfigError extends TsvmmError {
  constructor(readonly option: keyof MachineConfig, readonly field: string, readonly value: unknown, readonly problem: string, code: 'TSVMM_BAD_ARGUMENT' | 'TSVMM_LIMIT' = 'TSVMM_BAD_ARGUMENT', detail?: Record<string, unknown>) {
    super(code, `${value === undefined ? field : `${field} ${show(value)}`} ${problem}`, { option, field, value, ...detail });
    this.name = 'ConfigError';
  }
}

type Value<K extends keyof MachineConfig> = NonNullable<MachineConfig[K]>;

interface Rule<K extends keyof MachineConfig> {
  /** The value when none is given, from what was given (none: the field stays absent). */
  default?: (given: MachineOptions) => MachineConfig[K];
  /** Returns the value as plain data, or throws a ConfigError naming it and the limit it breaks. */
  check: (value: Value<K>, config: Readonly<MachineConfig>) => Value<K>;
}

/** A value as a message shows it: strings quoted, numbers as they are, anything else by its kind. */
function show(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'object' && value !== null) return Array.isArray(value) ? '(an array)' : '(an object)';
  if (typeof value === 'function' || typeof value === 'symbol') return `(a ${typeof value})`;
  return String(value);
}
const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;

/** `bytes` with its size in the largest unit it is a whole number of: "2097152 bytes (2 MiB)". */
function bytesAndUnit(bytes: number): string {
  const [unit, size] = bytes % GIB === 0 ? ['GiB', GIB] : bytes % MIB === 0 ? ['MiB', MIB] : ['KiB', KIB];
  return `${bytes} bytes (${bytes / size} ${unit})`;
}

interface NumberLimits {
  min: number;
  max: number;
  whole: boolean;
  /** How a limit is said in a message. */
  unit: (n: number) => string;
}

/** A number within [min, max] (`whole`: an integer); above max is TSVMM_LIMIT, anything else wrong TSVMM_BAD_ARGUMENT. */
function number(option: keyof MachineConfig, field: string, value: unknown, limits: NumberLimits): number {
  const { min, max, whole, unit } = limits;
  if (typeof value !== 'number' || Number.isNaN(value)) throw new ConfigError(option, field, value, 'is not a number');
  if (value > max) throw new ConfigError(option, field, value, `is too large: at most ${unit(max)}`, 'TSVMM_LIMIT', { max });
  if (value < min) throw new ConfigError(option, field, value, `is too small: at least ${unit(min)}`, 'TSVMM_BAD_ARGUMENT', { min });
  if (whole && !Number.isInteger(value)) throw new ConfigError(option, field, value, 'is not a whole number');
  return value;
}

function oneOf<T extends string>(option: keyof MachineConfig, field: string, value: unknown, allowed: readonly T[]): T {
  if (!(allowed as readonly unknown[]).includes(value)) throw new ConfigError(option, field, value, `is not one of ${allowed.join(', ')}`);
  return value as T;
}

function boolean(option: keyof MachineConfig, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new ConfigError(option, option, value, 'is not true or false');
  return value;
}

function path(option: keyof MachineConfig, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new ConfigError(option, option, value, 'is not a file name');
  return value;
}

function object(option: keyof MachineConfig, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(option, option, value, 'is not an object');
  return value as Record<string, unknown>;
}

/** A port, 1 to 65535, of a forward. */
function port(field: string, value: unknown): number {
  return number('nics', field, value, { min: 1, max: 65535, whole: true, unit: (n) => `port ${n}` });
}

/** One network card (NIC number `i`): its MAC checked or defaulted, its kind's fields checked. */
function checkNic(given: unknown, i: number): NicConfig {
  const field = `nics[${i}]`;
  if (typeof given !== 'object' || given === null || Array.isArray(given)) throw new ConfigError('nics', field, given, 'is not an object');
  const n = given as Record<string, unknown>;
  const kind = oneOf('nics', `${field}.kind`, n['kind'], ['user', 'tap'] as const);
  let mac: string;
  try {
    mac = n['mac'] === undefined ? defaultMac(i) : parseMac(typeof n['mac'] === 'string' ? n['mac'] : '');
  } catch (e) {
    if (!(e instanceof TsvmmError)) throw e;
    throw new ConfigError('nics', `${field}.mac`, n['mac'], 'is not a unicast MAC address (six hexadecimal pairs separated by colons, first byte even, not all zeros)');
  }
  if (kind === 'tap') {
    const ifname = n['ifname'];
    if (typeof ifname !== 'string') throw new ConfigError('nics', `${field}.ifname`, ifname, 'is not an interface name');
    try {
      checkIfname(ifname);
    } catch {
      throw new ConfigError('nics', `${field}.ifname`, ifname, "is not a valid Linux interface name (1 to 15 bytes, no '/', ':' or spaces, not '.' or '..')");
    }
    return { kind, mac, ifname };
  }
  const forwards = n['hostForwards'] ?? [];
  if (!Array.isArray(forwards)) throw new ConfigError('nics', `${field}.hostForwards`, forwards, 'is not an array');
  const hostForwards = forwards.map((f: unknown, j): HostForward => {
    const at = `${field}.hostForwards[${j}]`;
    if (typeof f !== 'object' || f === null || Array.isArray(f)) throw new ConfigError('nics', at, f, 'is not an object');
    const fw = f as Record<string, unknown>;
    const protocol = oneOf('nics', `${at}.protocol`, fw['protocol'] ?? 'tcp', ['tcp', 'udp'] as const);
    const address = fw['hostAddress'] ?? null;
    if (address !== null && (typeof address !== 'string' || !(isIPv4(address) || isIPv6(address)))) {
      throw new ConfigError('nics', `${at}.hostAddress`, address, 'is not an IPv4 or IPv6 address (null: every address)');
    }
    return { protocol, hostAddress: address, hostPort: port(`${at}.hostPort`, fw['hostPort']), guestPort: port(`${at}.guestPort`, fw['guestPort']) };
  });
  return { kind, mac, hostForwards };
}

/** Every option's default and check, by field. */
const RULES: { [K in keyof MachineConfig]-?: Rule<K> } = {
  kernel: {
    default: () => {
      throw new ConfigError('kernel', 'kernel', undefined, 'is missing: the kernel image is required');
    },
    check: (value) => path('kernel', value),
  },
  initrd: { check: (value) => path('initrd', value) },
  cmdline: {
    default: () => '',
    check: (value) => {
      if (typeof value !== 'string') throw new ConfigError('cmdline', 'cmdline', value, 'is not a string');
      return value;
    },
  },
  memory: {
    default: () => DEFAULT_MEMORY,
    check: (value) => {
      const bytes = number('memory', 'memory', value, { min: MIN_MEMORY, max: MAX_MEMORY, whole: true, unit: bytesAndUnit });
      if (bytes % MEMORY_GRANULE !== 0) throw new ConfigError('memory', 'memory', value, `is not a multiple of ${bytesAndUnit(MEMORY_GRANULE)}`);
      return bytes;
    },
  },
  cpus: {
    default: () => 1,
    check: (value) => number('cpus', 'cpus', value, { min: 1, max: MAX_CPUS, whole: true, unit: (n) => `${plural(n, 'vCPU')}${n === MAX_CPUS ? " (the board's MP table and I/O APIC id)" : ''}` }),
  },
  accel: {
    default: () => 'auto',
    check: (value) => oneOf('accel', 'accel', value, ACCELS),
  },
  cpu: { check: (value) => oneOf('cpu', 'cpu', value, CPU_MODEL_NAMES) },
  flat: {
    check: (value, config) => {
      const flat = object('flat', value);
      const loadAddr = number('flat', 'flat.loadAddr', flat['loadAddr'], { min: 0, max: MAX_FLAT_ADDRESS, whole: true, unit: (n) => `${hex(n)} (flat images load below 4 GiB)` });
      const mode = oneOf('flat', 'flat.mode', flat['mode'], ENTRY_MODES);
      if (config.initrd !== undefined) throw new ConfigError('flat', 'initrd', config.initrd, 'cannot be given with a flat binary (flat): it takes no initrd');
      return { loadAddr, mode };
    },
  },
  pvh: {
    default: () => false,
    check: (value) => boolean('pvh', value),
  },
  kernelCache: {
    default: (given) => (given.pvh ? defaultKernelCacheDir() : false),
    check: (value) => (value === false ? false : path('kernelCache', value)),
  },
  inlineDevices: {
    default: () => true,
    check: (value) => boolean('inlineDevices', value),
  },
  timeoutMs: {
    check: (value) => {
      const ms = number('timeoutMs', 'timeoutMs', value, { min: -Infinity, max: MAX_TIMEOUT_MS, whole: false, unit: (n) => `${n} ms (${Math.floor(n / 1000)} seconds, about 24.8 days: setTimeout's limit)` });
      if (!(ms > 0)) throw new ConfigError('timeoutMs', 'timeoutMs', value, 'is too small: it must be more than 0');
      return ms;
    },
  },
  traceCpu: {
    check: (value) => number('traceCpu', 'traceCpu', value, { min: 1, max: Number.MAX_SAFE_INTEGER, whole: true, unit: (n) => plural(n, 'instruction') }),
  },
  drives: {
    check: (value) => {
      if (!Array.isArray(value)) throw new ConfigError('drives', 'drives', value, 'is not an array');
      if (value.length > MAX_DRIVES) throw new ConfigError('drives', 'drives', undefined, `has ${value.length} disks: at most ${MAX_DRIVES}`, 'TSVMM_LIMIT', { max: MAX_DRIVES });
      const seen = new Set<string>();
      return value.map((given: unknown, i): DriveConfig => {
        const field = `drives[${i}]`;
        if (typeof given !== 'object' || given === null || Array.isArray(given)) throw new ConfigError('drives', field, given, 'is not an object');
        const d = given as Record<string, unknown>;
        if (typeof d['file'] !== 'string' || d['file'] === '') throw new ConfigError('drives', `${field}.file`, d['file'], 'is not a file name');
        const file = d['file'];
        if (seen.has(file)) throw new ConfigError('drives', `${field}.file`, file, 'is given twice: an image is one disk');
        seen.add(file);
        const readonly = d['readonly'] ?? false;
        if (typeof readonly !== 'boolean') throw new ConfigError('drives', `${field}.readonly`, readonly, 'is not true or false');
        const drive: DriveConfig = { file, readonly };
        if (d['serial'] !== undefined) {
          const serial = d['serial'];
          if (typeof serial !== 'string' || !/^[\x20-\x7e]*$/.test(serial)) throw new ConfigError('drives', `${field}.serial`, serial, 'is not a string of printable ASCII');
          if (serial.length > MAX_SERIAL_BYTES) throw new ConfigError('drives', `${field}.serial`, serial, `is too long: at most ${MAX_SERIAL_BYTES} bytes`, 'TSVMM_LIMIT', { max: MAX_SERIAL_BYTES });
          drive.serial = serial;
        }
        return drive;
      });
    },
  },
  console: {
    default: () => 'serial',
    check: (value) => oneOf('console', 'console', value, CONSOLE_KINDS),
  },
  rng: {
    default: () => false,
    check: (value) => boolean('rng', value),
  },
  agent: {
    default: () => false,
    check: (value) => boolean('agent', value),
  },
  nics: {
    check: (value) => {
      if (!Array.isArray(value)) throw new ConfigError('nics', 'nics', value, 'is not an array');
      if (value.length > MAX_BOARD_NICS) throw new ConfigError('nics', 'nics', undefined, `has ${value.length} network cards: at most ${MAX_BOARD_NICS}`, 'TSVMM_LIMIT', { max: MAX_BOARD_NICS });
      const nics = value.map((given: unknown, i) => checkNic(given, i));
      try {
        checkNics(nics);
      } catch (e) {
        if (!(e instanceof TsvmmError)) throw e;
        throw new ConfigError('nics', 'nics', undefined, `are refused: ${e.message}`);
      }
      return nics;
    },
  },
  profile: {
    check: (value) => {
      const profile = object('profile', value);
      const checked: ProfileConfig = {};
      if (profile['hz'] !== undefined) checked.hz = number('profile', 'profile.hz', profile['hz'], { min: 1, max: MAX_PROFILE_HZ, whole: true, unit: (n) => `${plural(n, 'sample')} a second` });
      if (profile['delayMs'] !== undefined) checked.delayMs = number('profile', 'profile.delayMs', profile['delayMs'], { min: 0, max: MAX_PROFILE_DELAY_MS, whole: false, unit: (n) => `${n} ms (${n / 1000} seconds)` });
      return checked;
    },
  },
};

const NAMES = Object.keys(RULES) as (keyof MachineConfig)[];

/**
 * The configuration of a machine from `options`: the defaults filled in and every value checked
 * (a ConfigError, TSVMM_BAD_ARGUMENT or TSVMM_LIMIT, names the bad value and the limit).
 * Fields MachineConfig does not have are left out, so the result is plain data. Giving it a
 * configuration returns an equal one.
 */
export function machineConfig(options: MachineOptions): MachineConfig {
  if (typeof options !== 'object' || options === null) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `the machine's options ${show(options)} are not an object`, { value: options });
  const config: Partial<Record<keyof MachineConfig, unknown>> = {};
  for (const name of NAMES) {
    const value = options[name] ?? RULES[name].default?.(options);
    if (value !== undefined) config[name] = value;
  }
  const given = config as MachineConfig;
  const checkOne = <K extends keyof MachineConfig>(name: K): void => {
    const rule = RULES[name] as unknown as Rule<K>;
    if (config[name] !== undefined) config[name] = rule.check(config[name] as Value<K>, given);
  };
  for (const name of NAMES) checkOne(name);
  return given;
}
