import { once } from 'node:events';
import { closeSync, createWriteStream, openSync, readFileSync, statSync, type WriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { parseAccel, parseCpuModel } from '../../backends/open.js';
import { TsvmmError } from '../../common/errors.js';
import type { EntryMode } from '../../loader/load-result.js';
import { parseNicOption } from '../../devices/net/nic-config.js';
import { CONSOLE_KINDS, ConfigError, ENTRY_MODES, machineConfig, MAX_BOARD_NICS, MAX_CPUS, MAX_DRIVES, MAX_TIMEOUT_MS, type ConsoleKind, type DriveConfig, type FlatImage, type MachineConfig, type MachineOptions } from '../../vmm/config.js';
import { VirtualMachine, type VmExited } from '../../vmm/virtual-machine.js';
import { DEFAULT_PROFILE_HZ, MAX_PROFILE_HZ } from '../../nvmm/profile.js';
import { formatProfile, parseSymbolMap, type SymbolMap } from '../../vmm/profile.js';
import { ACCEL_OPTION, parseCommandArgs } from '../args.js';
import type { Command, CommandIo } from '../command.js';
import { describeStack, EXIT } from '../status.js';
import { DEFAULT_GDB_HOST } from '../../vmm/gdb/server.js';

const CTRL_A = 0x01;
/** On a terminal, typed bytes the guest has not taken yet beyond this many are dropped (stdin keeps being read, for Ctrl-A x). */
const TYPED_BACKLOG = 1 << 20;

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;
const DECIMAL = /^\d+$/;
const ADDRESS = /^(0x[0-9a-f]+|\d+)$/i;
/** --timeout's limit in whole seconds, for the usage text (the check is the config's). */
const MAX_TIMEOUT_SECONDS = Math.floor(MAX_TIMEOUT_MS / 1000);

// The parsers below only turn text into values ("'12x' is not a size"); whether the machine can
// take a value (its range, its consistency with the others) is the configuration's check
// (vmm/config.ts), the same for programs and for this command: see configFromArgs.

function usage(message: string): TsvmmError {
  return new TsvmmError('TSVMM_USAGE', message);
}

/** QEMU's -m: a number of MiB, or a number with a K/M/G suffix, in bytes. */
export function parseMemorySize(text: string): number {
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(text.trim());
  if (!m) throw usage(`bad memory size '${text}' (examples: 256, 512M, 2G)`);
  const unit = { '': MIB, K: KIB, M: MIB, G: GIB }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * unit;
}

/** --smp N: a number of vCPUs. */
function parseSmp(text: string): number {
  if (!DECIMAL.test(text)) throw usage(`bad --smp '${text}': want a number of vCPUs, 1 to ${MAX_CPUS}`);
  return Number(text);
}

/** --timeout SECONDS: a decimal number of seconds, in milliseconds. */
function parseTimeout(text: string): number {
  if (!/^(\d+\.?\d*|\.\d+)$/.test(text)) throw usage(`bad --timeout '${text}': want a number of seconds, such as 10 or 2.5`);
  return Number(text) * 1000;
}

/** --trace cpu[=N]: how many instructions to print. */
function parseTraceCount(spec: string, count: string | undefined): number {
  if (count === undefined) return 100_000;
  if (!DECIMAL.test(count)) throw usage(`bad --trace '${spec}': want cpu=N, N a number of instructions`);
  return Number(count);
}

/** --flat ADDR[:MODE]: a flat binary loaded at ADDR, entered in real16 (default), protected32 or long64. */
function parseFlat(text: string): FlatImage {
  const parts = text.split(':');
  const [addr = '', mode = 'real16'] = parts;
  if (parts.length > 2 || !ADDRESS.test(addr)) throw usage(`bad --flat '${text}': want ADDR[:MODE], ADDR decimal or 0x hex`);
  if (!(ENTRY_MODES as readonly string[]).includes(mode)) throw usage(`bad --flat mode '${mode}' (${ENTRY_MODES.join(', ')})`);
  return { loadAddr: Number(addr), mode: mode as EntryMode };
}

/**
 * --drive file=PATH[,readonly=on|off][,serial=NAME], QEMU's spelling of its -drive keys (a comma
 * in PATH is doubled, as QEMU has it). The config checks the values themselves.
 */
export function parseDrive(text: string): DriveConfig {
  const items: string[] = [];
  let item = '';
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== ',') item += text[i];
    else if (text[i + 1] === ',') { item += ','; i++; }
    else { items.push(item); item = ''; }
  }
  items.push(item);
  const drive: Partial<DriveConfig> = {};
  for (const it of items) {
    const eq = it.indexOf('=');
    const [key, value] = eq < 0 ? [it, undefined] : [it.slice(0, eq), it.slice(eq + 1)];
    if (key === 'file' && value !== undefined) drive.file = value;
    else if (key === 'readonly' && (value === 'on' || value === 'off' || value === undefined)) drive.readonly = value !== 'off';
    else if (key === 'serial' && value !== undefined) drive.serial = value;
    else throw usage(`bad --drive '${text}': unknown or malformed '${it}' (file=PATH, readonly=on|off, serial=NAME)`);
  }
  if (drive.file === undefined) throw usage(`bad --drive '${text}': file=PATH is missing`);
  return { file: drive.file, readonly: drive.readonly ?? false, ...(drive.serial === undefined ? {} : { serial: drive.serial }) };
}

function parseConsole(text: string): ConsoleKind {
  if (!(CONSOLE_KINDS as readonly string[]).includes(text)) throw usage(`bad --console '${text}' (${CONSOLE_KINDS.join(' or ')})`);
  return text as ConsoleKind;
}

/**
 * The machine's configuration from the values of the command line. A value the machine cannot
 * take is a usage error (status 2) that names it as it was typed (`typed`, by the field of the
 * configuration: '--smp 65'), then says what the configuration says of it.
 */
function configFromArgs(options: MachineOptions, typed: Record<string, string | undefined>): MachineConfig {
  try {
    return machineConfig(options);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    const name = typed[e.field] ?? typed[e.option];
    throw usage(name === undefined ? e.message : `${name} ${e.problem}`);
  }
}

/** --gdb tcp:[HOST:]PORT (HOST 127.0.0.1 when empty or left out; PORT 0: any free port). */
export function parseGdb(text: string): { host: string; port: number } {
  const m = /^tcp:(?:(.*):)?(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw usage(`bad --gdb '${text}': want tcp:HOST:PORT or tcp:PORT (PORT 0-65535)`);
  const host = m[1] ?? '';
  return { host: host === '' ? DEFAULT_GDB_HOST : host.replace(/^\[(.*)\]$/, '$1'), port };
}

/** --serial stdio|file:PATH; the file is created (or truncated) now, so that a bad PATH stops the run before it starts. */
function checkSerial(text: string): void {
  if (text === 'stdio') return;
  if (!text.startsWith('file:')) throw usage(`bad --serial '${text}' (stdio or file:PATH)`);
  const file = text.slice('file:'.length);
  if (file === '') throw usage(`bad --serial '${text}': the PATH after file: is missing`);
  try {
    closeSync(openSync(file, 'w'));
  } catch (e) {
    throw new TsvmmError('TSVMM_BAD_ARGUMENT', `cannot write the --serial file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** The code of a VmEnd error that is a bug in tsvmm (an exception in the machine's thread). */
const INTERNAL = 'TSVMM_INTERNAL';

/** The exit status for how the guest ended (QEMU-like: a debug-exit write gives its own value). */
export function exitStatus(exited: VmExited): number {
  const end = exited.end;
  switch (end.how) {
    case 'reset': case 'poweroff': case 'stopped': return 0;
    case 'debug-exit': return end.status & 0xff;
    case 'triple-fault': return 3;
    case 'timeout': return 4;
    case 'error': return end.code === INTERNAL ? EXIT.INTERNAL : EXIT.ERROR;
  }
}

/** The line that says how the guest ended, when its status alone does not. */
function describe(exited: VmExited): string | undefined {
  const end = exited.end;
  switch (end.how) {
    case 'debug-exit': {
      const value = (end.status - 1) / 2; // the device reports (value << 1) | 1
      return `tsvmm: the guest wrote 0x${value.toString(16)} to the debug-exit port (status ${exitStatus(exited)})`;
    }
    case 'triple-fault': return `tsvmm: the guest triple-faulted: ${end.report}`;
    case 'timeout': return `tsvmm: TSVMM_TIMEOUT: ${end.report}`;
    case 'error': return end.code === INTERNAL ? `tsvmm: internal error: ${describeStack(end.message)}` : `tsvmm: ${end.code}: ${end.message}`;
    default: return undefined;
  }
}

/** --trace top=N: at most this many rows. */
const MAX_TOP = 100_000;

/** A symbol map larger than this is refused (Linux's kallsyms with modules: ~15 MB). */
const MAX_SYMBOL_FILE_BYTES = 256 << 20;

interface TraceOptions {
  exits: boolean;
  /** The items that gave the machine's options, as typed (for messages), by field of the configuration. */
  typed: Record<string, string>;
  cpu?: number;
  profile?: { hz: number; delayMs: number; symbols?: SymbolMap; top?: number; from?: string; to?: string };
}

/** The --trace values: each a comma-separated list of exits, cpu[=N], profile[=HZ], symbols=FILE, top=N, delay=SECONDS, from=TEXT, to=TEXT. */
function parseTrace(values: string[]): TraceOptions {
  const t: TraceOptions = { exits: false, typed: {} };
  let hz: number | undefined, symbols: string | undefined, top: number | undefined, delay: number | undefined;
  let from: string | undefined, to: string | undefined;
  const count = (text: string, what: string, max: number) => {
    if (!DECIMAL.test(text)) throw usage(`bad --trace ${what}=${text} (1 to ${max})`);
    return Number(text);
  };
  for (const item of values.flatMap((v) => v.split(','))) {
    const [name, value] = item.includes('=') ? [item.slice(0, item.indexOf('=')), item.slice(item.indexOf('=') + 1)] : [item, undefined];
    if (name === 'exits' && value === undefined) t.exits = true;
    else if (name === 'cpu') {
      t.cpu = parseTraceCount(item, value);
      t.typed['traceCpu'] = `--trace ${item}`;
    } else if (name === 'profile') {
      hz = value === undefined ? DEFAULT_PROFILE_HZ : count(value, 'profile', MAX_PROFILE_HZ);
      t.typed['profile.hz'] = `--trace ${item}`;
    }
    else if (name === 'symbols' && value) symbols = value;
    else if (name === 'top' && value !== undefined) {
      top = count(value, 'top', MAX_TOP); // the report's, not the machine's
      if (top < 1 || top > MAX_TOP) throw usage(`bad --trace top=${value} (1 to ${MAX_TOP})`);
    } else if (name === 'delay' && value !== undefined) {
      if (!/^\d+(\.\d+)?$/.test(value)) throw usage(`bad --trace delay=${value} (seconds)`);
      delay = Number(value);
      t.typed['profile.delayMs'] = `--trace ${item}`;
    } else if (name === 'from' && value) from = value;
    else if (name === 'to' && value) to = value;
    else throw new TsvmmError('TSVMM_USAGE', `unknown --trace '${item}' (exits, cpu[=N], profile[=HZ], symbols=FILE, top=N, delay=SECONDS, from=TEXT, to=TEXT)`);
  }
  if (hz === undefined && [symbols, top, delay, from, to].some((v) => v !== undefined)) hz = DEFAULT_PROFILE_HZ;
  if (hz !== undefined) t.profile = { hz, delayMs: (delay ?? 0) * 1000, top, from, to, symbols: symbols === undefined ? undefined : readSymbols(symbols) };
  return t;
}

function readSymbols(path: string): SymbolMap {
  let text: string;
  try {
    if (!statSync(path).isFile()) throw new TsvmmError('TSVMM_USAGE', `--trace symbols=${path} is not a regular file`);
    if (statSync(path).size > MAX_SYMBOL_FILE_BYTES) throw new TsvmmError('TSVMM_LIMIT', `--trace symbols=${path} is larger than ${MAX_SYMBOL_FILE_BYTES >> 20} MiB`);
    text = readFileSync(path, 'latin1');
  } catch (e) {
    if (e instanceof TsvmmError) throw e;
    throw new TsvmmError('TSVMM_USAGE', `--trace symbols=${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parseSymbolMap(text, path);
}

export const run: Command = {
  name: 'run',
  summary: 'boot a guest: a Linux bzImage, a multiboot kernel or a flat binary',
  usage: `usage: tsvmm run --kernel FILE [options]
       tsvmm run --restore SNAPSHOT [--accel kvm|soft|auto] [--exec COMMAND] [--timeout SECONDS] [--serial ...]

  --kernel FILE        bzImage (Linux boot protocol), multiboot kernel, ELF vmlinux with a PVH note,
                       or flat binary with --flat
  --pvh                decompress a bzImage here and enter the kernel through PVH (skips the
                       in-guest decompressor)
  --initrd FILE        initial ramdisk (for multiboot: the first module)
  --append CMDLINE     kernel command line
  -m, --memory SIZE    guest RAM: MiB, or with a K/M/G suffix; 2M to 127G (default 256M)
  --smp N              vCPUs, 1 to ${MAX_CPUS} (default 1)
  --accel kvm|soft|auto  backend (default auto)
  --cpu max|qemu64     the soft CPU's model (default max: everything it implements)
  --serial stdio|file:PATH  where the console goes (default stdio; input is always stdin)
  --drive file=PATH[,readonly=on][,serial=NAME]
                       a virtio disk on a raw image (repeatable, at most ${MAX_DRIVES}: /dev/vda, /dev/vdb...);
                       readonly=on: the guest cannot write it. The image is locked while the
                       machine runs (shared for readonly, else exclusive)
  --console serial|virtio  the console that --serial and stdin are wired to: COM1 (ttyS0, the
                       default) or a virtio console (hvc0: boot with console=hvc0); with virtio,
                       COM1's output still comes out there too
  --exec COMMAND       run COMMAND (sh -c) in the guest through its exec agent (an initramfs from
                       \`tsvmm initramfs --modules virtio_mmio,virtio_console\`), print its stdout
                       and stderr, end the machine and exit with the command's status; the
                       console goes to standard error (or --serial file:PATH), stdin is not read.
                       The boot and the command each have --timeout, or 10 minutes
  --nic user[,mac=MAC][,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-:GUESTPORT]...
                       a virtio network card on user-mode networking through passt (Debian
                       package passt), started as a child and ended with the machine: the guest
                       gets an address by DHCP and reaches what the host reaches (the gateway's
                       address is the host itself); each hostfwd forwards a host port to the
                       guest's port (repeatable)
  --nic tap,ifname=NAME[,mac=MAC]
                       a virtio network card on the host's TAP interface NAME (an existing one
                       this user may open, or a new one with CAP_NET_ADMIN, gone at the end).
                       --nic is repeatable, at most ${MAX_BOARD_NICS}: eth0, eth1... in order. Without mac=,
                       card n is 02:74:73:76:6d:nn
  --rng                a virtio entropy device fed from the host's random generator (as QEMU's
                       virtio-rng; off by default, as in QEMU and Firecracker)
  --flat ADDR[:MODE]   load the kernel as a flat binary at ADDR; MODE real16 (default), protected32, long64
  --timeout SECONDS    end the run (status 4, with a report) if the guest is still running; at
                       most ${MAX_TIMEOUT_SECONDS} (24 days)
  --trace exits        print the count of each kind of exit at the end, and the CPU's counters
  --trace cpu[=N]      print each executed instruction (address, bytes, disassembly, changed
                       registers) to standard error, the first N (default 100000); soft backend
  --trace profile[=HZ][,symbols=FILE][,top=N][,delay=SECONDS][,from=TEXT][,to=TEXT]
                       sample the boot vCPU HZ times a second (default ${DEFAULT_PROFILE_HZ}; soft backend),
                       from SECONDS after the start, or once the console has printed TEXT (until
                       it prints the to= TEXT), and print at the end where the host's time went
                       by phase (interpreter, compiled JS, compiled wasm, compile, decode,
                       dispatch, page walk, device, VMM exits, halted) and the top N (default 25)
                       guest RIPs, or functions with FILE: a System.map, the guest's
                       /proc/kallsyms or nm output ('ADDRESS TYPE NAME'; a kernel entered
                       through PVH runs at its link addresses, else boot with nokaslr)
  A --trace value may list several, separated by commas: --trace exits,profile
  --gdb tcp:[HOST:]PORT  serve GDB's remote protocol (gdb: target remote HOST:PORT), each vCPU a
                       thread (id = vCPU id + 1); HOST 127.0.0.1 unless given, PORT 0 for any free
                       port (the port is printed); one client at a time
  --gdb-wait           with --gdb: start paused, until the debugger continues (QEMU's -S)
  --agent              give the guest the exec agent's port (--exec implies it), so that a machine
                       saved with --save can be given --exec when it is restored
  --save PATH          with --save-when: once the console has printed TEXT, save the machine to
                       PATH (docs/snapshot-format.md), end it and exit 0 (1 if it cannot be saved)
  --save-when TEXT     what the console prints when the machine is to be saved
  --restore PATH       continue the machine saved in PATH instead of booting: its configuration,
                       RAM, devices and vCPU come from the file (--kernel, --initrd, --drive and the
                       other machine options are not given); --accel picks the backend it continues
                       on. A snapshot that is damaged, of another version, or whose drives changed
                       since it was saved is refused (TSVMM_SNAPSHOT_*), before anything runs

On a terminal, Ctrl-A x ends the machine (Ctrl-A Ctrl-A sends Ctrl-A), as in QEMU.
Exit status: 0 after a reset, power-off or Ctrl-A x; for a write of VALUE to the debug-exit port
(0x501), (VALUE << 1) | 1 modulo 256, as QEMU's isa-debug-exit; 3 after a triple fault; 4 after
--timeout; 1 on errors; 2 on a bad command line; 70 on an internal error. Standard error says
how the guest ended, except after a reset, a power-off or Ctrl-A x.
`,
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, {
      ...ACCEL_OPTION,
      kernel: { type: 'string' }, initrd: { type: 'string' }, append: { type: 'string', default: '' },
      memory: { type: 'string', short: 'm', default: '256M' }, smp: { type: 'string', default: '1' },
      serial: { type: 'string', default: 'stdio' },
      flat: { type: 'string' }, timeout: { type: 'string' }, trace: { type: 'string', multiple: true, default: [] },
      pvh: { type: 'boolean', default: false }, cpu: { type: 'string' },
      drive: { type: 'string', multiple: true, default: [] }, nic: { type: 'string', multiple: true, default: [] }, console: { type: 'string', default: 'serial' }, rng: { type: 'boolean', default: false },
      gdb: { type: 'string' }, 'gdb-wait': { type: 'boolean', default: false },
      exec: { type: 'string' }, agent: { type: 'boolean', default: false },
      save: { type: 'string' }, 'save-when': { type: 'string' }, restore: { type: 'string' },
    });
    if ((values.save === undefined) !== (values['save-when'] === undefined)) throw usage('--save PATH and --save-when TEXT go together');
    if (values.save === '' || values['save-when'] === '' || values.restore === '') throw usage('--save, --save-when and --restore take a non-empty value');
    if (values.save !== undefined && values.exec !== undefined) throw usage('--save and --exec cannot be given together');
    if (values.restore !== undefined) {
      const machineOptions = [['--kernel', values.kernel], ['--initrd', values.initrd], ['--flat', values.flat], ['--cpu', values.cpu], ['--drive', values.drive!.length > 0 ? 'x' : undefined], ['--save', values.save]] as const;
      const given = machineOptions.filter(([, v]) => v !== undefined).map(([name]) => name);
      if (given.length > 0) throw usage(`--restore takes the machine from the snapshot: ${given.join(', ')} cannot be given with it`);
      // auto: the backend the snapshot's configuration names.
      return runRestored(values.restore, { accel: values.accel === 'auto' ? undefined : parseAccel(values.accel!), timeout: values.timeout, exec: values.exec, serial: values.serial!, trace: values.trace! }, io);
    }
    if (!values.kernel) throw usage('--kernel is required');
    const trace = parseTrace(values.trace!);
    const config = configFromArgs({
      kernel: values.kernel,
      initrd: values.initrd,
      cmdline: values.append,
      memory: parseMemorySize(values.memory!),
      cpus: parseSmp(values.smp!),
      accel: parseAccel(values.accel!),
      cpu: values.cpu === undefined ? undefined : parseCpuModel(values.cpu),
      flat: values.flat === undefined ? undefined : parseFlat(values.flat),
      timeoutMs: values.timeout === undefined ? undefined : parseTimeout(values.timeout),
      traceCpu: trace.cpu,
      profile: trace.profile && { hz: trace.profile.hz, delayMs: trace.profile.delayMs },
      pvh: values.pvh,
      drives: values.drive!.length > 0 ? values.drive!.map(parseDrive) : undefined,
      console: parseConsole(values.console!),
      rng: values.rng,
      agent: values.exec !== undefined || values.agent,
      nics: values.nic!.length > 0 ? values.nic!.map((text, i) => parseNicOption(text, i)) : undefined,
    }, {
      nics: '--nic',
      memory: `memory size '${values.memory}'`, cpus: `--smp ${values.smp}`, flat: `--flat ${values.flat}`, initrd: `--initrd ${values.initrd}`,
      timeoutMs: `--timeout ${values.timeout}`, ...trace.typed,
      drives: '--drive',
      ...Object.fromEntries(values.drive!.map((d, i) => [[`drives[${i}].file`, `--drive ${d}: file`], [`drives[${i}].serial`, `--drive ${d}: serial`]]).flat()),
    });
    const gate = trace.profile?.from !== undefined || trace.profile?.to !== undefined ? new SharedArrayBuffer(4) : undefined;
    const serial = values.serial!;
    const gdb = values.gdb === undefined ? undefined : parseGdb(values.gdb);
    if (values['gdb-wait'] && !gdb) throw usage('--gdb-wait needs --gdb');
    checkSerial(serial);

    const vm = await VirtualMachine.create({ ...config, profileGate: gate });
    vm.on('log', (message) => io.err(`tsvmm: ${message}\n`));
    if (gdb) {
      const server = await vm.gdbServer({ ...gdb, wait: values['gdb-wait'] });
      io.err(`tsvmm: gdb server on ${server.host}:${server.port}${values['gdb-wait'] ? ' (the machine waits for the debugger)' : ''}\n`);
    }
    if (gate) profileGate(vm, trace.profile!.from, trace.profile!.to, new Int32Array(gate));
    // With --exec, standard output is the command's: the console goes to standard error.
    const output = await connectOutput(vm, values.exec !== undefined && serial === 'stdio' ? { out: io.err, err: io.err } : io, serial);
    const deadline = config.timeoutMs === undefined ? Infinity : Date.now() + config.timeoutMs;
    const stopInput = values.exec === undefined ? connectInput(vm, io) : () => {};
    const saving = values.save === undefined ? undefined : saveWhen(vm, values.save, values['save-when']!, io);
    vm.start();
    const ran = values.exec === undefined ? undefined : await execInGuest(vm, values.exec, config.timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS, io);
    const exited = await vm.exited;
    const saved = await saving?.result();
    stopInput();
    const outputFailure = await output.finish(deadline);
    const why = outputFailure ?? describe(exited);
    if (why) io.err(`\n${why}\n`);
    if (trace.profile && exited.profile) io.err(formatProfile(exited.profile, trace.profile));
    if (trace.exits) {
      io.err(`exits: ${Object.entries(exited.exits).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}\n`);
      if (exited.inlineIo) io.err(`port I/O served inline (no exit): ${exited.inlineIo}\n`);
      if (exited.inlineMmio) io.err(`MMIO served inline (no exit): ${exited.inlineMmio}\n`);
      const cpu = Object.entries(exited.cpu);
      if (cpu.length > 0) io.err(`cpu: ${cpu.map(([k, n]) => `${k} ${n}`).join(', ')}\n`);
    }
    if (ran !== undefined) return outputFailure ? 1 : ran;
    if (saved !== undefined) return outputFailure || !saved ? 1 : 0;
    return outputFailure ? 1 : exitStatus(exited);
  },
};

/**
 * --save PATH --save-when TEXT: once the console has printed TEXT, saves the machine to PATH and
 * stops it. result(): whether it was saved (false: the failure was said on stderr), or undefined
 * when the machine ended before TEXT came.
 */
function saveWhen(vm: VirtualMachine, path: string, text: string, io: CommandIo): { result(): Promise<boolean | undefined> } {
  let tail = '';
  let saving: Promise<boolean> | undefined;
  const onData = (b: Buffer) => {
    tail = (tail + b.toString('latin1')).slice(-Math.max(text.length, 1) * 2 - 4096);
    if (saving || !tail.includes(text)) return;
    vm.console.off('data', onData);
    saving = vm.save(path).then(
      () => { io.err(`tsvmm: saved the machine to ${path}\n`); return true; },
      (e: unknown) => {
        if (!(e instanceof TsvmmError)) throw e;
        io.err(`tsvmm: --save: ${e.code}: ${e.message}\n`);
        return false;
      },
    ).finally(() => void vm.stop());
  };
  vm.console.on('data', onData);
  return { result: async () => (saving ? saving : undefined) };
}

/** tsvmm run --restore: continues a saved machine, with the console, --exec and --timeout as a booted one has them. */
async function runRestored(path: string, opts: { accel: ReturnType<typeof parseAccel> | undefined; timeout: string | undefined; exec: string | undefined; serial: string; trace: string[] }, io: CommandIo): Promise<number> {
  if (opts.trace.length > 0) throw usage('--trace cannot be given with --restore');
  checkSerial(opts.serial);
  const timeoutMs = opts.timeout === undefined ? undefined : parseTimeout(opts.timeout);
  const vm = await VirtualMachine.restore(path, { accel: opts.accel, timeoutMs });
  vm.on('log', (message) => io.err(`tsvmm: ${message}\n`));
  const output = await connectOutput(vm, opts.exec !== undefined && opts.serial === 'stdio' ? { out: io.err, err: io.err } : io, opts.serial);
  const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
  const stopInput = opts.exec === undefined ? connectInput(vm, io) : () => {};
  vm.start();
  const ran = opts.exec === undefined ? undefined : await execInGuest(vm, opts.exec, timeoutMs ?? DEFAULT_EXEC_TIMEOUT_MS, io);
  const exited = await vm.exited;
  stopInput();
  const outputFailure = await output.finish(deadline);
  const why = outputFailure ?? describe(exited);
  if (why) io.err(`\n${why}\n`);
  if (ran !== undefined) return outputFailure ? 1 : ran;
  return outputFailure ? 1 : exitStatus(exited);
}

/** --exec's wait for the agent and for the command, without --timeout. */
const DEFAULT_EXEC_TIMEOUT_MS = 10 * 60_000;

/**
 * --exec: waits for the guest's agent, runs `command`, writes its stdout and stderr, and stops
 * the machine. Returns the command's status, or 1 when it could not be run (said on stderr).
 */
async function execInGuest(vm: VirtualMachine, command: string, timeoutMs: number, io: CommandIo): Promise<number> {
  try {
    const r = await vm.exec(command, { readyTimeoutMs: timeoutMs, timeoutMs });
    await io.out(r.stdout.toString('latin1'));
    if (r.stderr.length) io.err(r.stderr.toString('latin1'));
    return r.code;
  } catch (e) {
    if (!(e instanceof TsvmmError)) throw e;
    io.err(`tsvmm: --exec: ${e.code}: ${e.message}\n`);
    return 1;
  } finally {
    await vm.stop();
  }
}

/**
 * The profiler's gate (ProfileOptions.gate) opened when the guest's console has printed `from`
 * and closed when it has printed `to` (either may be absent: open from the start, open to the end).
 */
function profileGate(vm: VirtualMachine, from: string | undefined, to: string | undefined, gate: Int32Array): void {
  let want = from ?? to;
  if (from === undefined) Atomics.store(gate, 0, 1);
  let tail = '';
  const onData = (b: Buffer) => {
    if (want === undefined) return;
    tail += b.toString('latin1');
    const at = tail.indexOf(want);
    if (at < 0) {
      tail = tail.slice(-(want.length - 1) || tail.length); // what could still start a match
      return;
    }
    tail = tail.slice(at + want.length);
    if (want === from) {
      Atomics.store(gate, 0, 1);
      want = to;
      if (want !== undefined) onData(Buffer.alloc(0));
    } else {
      Atomics.store(gate, 0, 0);
      want = undefined;
    }
  };
  vm.console.on('data', onData);
}

/**
 * The guest's console to standard output or a file, at the pace they take it (the guest waits
 * while they are full). A file that cannot be opened is refused before the machine starts; a
 * write that fails later stops the machine. finish() waits for what the guest wrote to be
 * written out (until `deadline`, for a reader that never reads) and says what failed, if anything.
 */
async function connectOutput(vm: VirtualMachine, io: CommandIo, serial: string): Promise<{ finish(deadline: number): Promise<string | undefined> }> {
  let file: WriteStream | undefined;
  let stream = io.outStream;
  let where = 'standard output';
  if (serial.startsWith('file:')) {
    where = serial.slice('file:'.length);
    file = createWriteStream(where);
    try {
      await Promise.race([once(file, 'open'), once(file, 'error').then(([e]) => Promise.reject(e as Error))]);
    } catch (e) {
      throw new TsvmmError('TSVMM_SYSCALL', `--serial file:${where}: cannot open it for writing: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    stream = file;
  }
  let failure: string | undefined;
  const onError = (e: NodeJS.ErrnoException) => {
    failure ??= `tsvmm: TSVMM_SYSCALL: writing the guest's console to ${where} failed: ${e.code ?? e.message}`;
    void vm.stop();
  };
  if (stream) {
    stream.on('error', onError);
    vm.console.pipe(stream, { end: false });
  } else {
    vm.console.on('data', (b: Buffer) => io.out(b.toString('latin1')));
  }
  return {
    async finish(deadline: number): Promise<string | undefined> {
      if (!failure) await untilDeadline(written(vm.console, stream), deadline);
      if (file) {
        file.end();
        await untilDeadline(finished(file).catch(() => undefined), deadline); // (a failed file is already closed)
      }
      stream?.off('error', onError);
      return failure;
    },
  };
}

/** Resolves once `console` has ended and `stream` has written everything it was given. */
async function written(console: Readable, stream: NodeJS.WritableStream | undefined): Promise<void> {
  if (!console.readableEnded) await once(console, 'end');
  // A write's callback runs once it and everything before it has been written.
  if (stream) await new Promise<void>((resolve) => stream.write(new Uint8Array(0), () => resolve()));
}

async function untilDeadline(p: Promise<void>, deadline: number): Promise<void> {
  if (deadline === Infinity) return p;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))))]);
  clearTimeout(timer);
}

/**
 * Standard input to the guest; on a terminal in raw mode with QEMU's Ctrl-A escapes. Piped input
 * waits while the guest is not reading (stdin pauses until the console has room): nothing is
 * dropped. A terminal keeps being read, so that Ctrl-A x always works; typed bytes wait for the
 * guest up to TYPED_BACKLOG, beyond which they are dropped with a note.
 */
function connectInput(vm: VirtualMachine, io: CommandIo): () => void {
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  let escape = false;
  let connected = true;
  let droppedNoted = false;
  const resume = () => {
    if (connected) stdin.resume();
  };
  const send = (bytes: Buffer) => {
    if (raw) {
      if (vm.console.writableLength + bytes.length > TYPED_BACKLOG) {
        if (!droppedNoted) io.err('\ntsvmm: the guest is not reading its console: typed input beyond 1 MiB is dropped\n');
        droppedNoted = true;
        return;
      }
      vm.console.write(bytes);
    } else if (!vm.console.write(bytes)) {
      stdin.pause();
      vm.console.once('drain', resume);
    }
  };
  const onData = (chunk: Buffer) => {
    if (!raw) return send(chunk);
    const out: number[] = [];
    for (const byte of chunk) {
      if (escape) {
        escape = false;
        if (byte === 0x78 /* x */) {
          void vm.stop();
          return;
        }
        out.push(byte === CTRL_A ? CTRL_A : byte);
      } else if (byte === CTRL_A) escape = true;
      else out.push(byte);
    }
    if (out.length) send(Buffer.from(out));
  };
  stdin.on('data', onData);
  return () => {
    connected = false;
    vm.console.off('drain', resume);
    stdin.off('data', onData);
    if (raw) stdin.setRawMode(false);
    stdin.pause();
  };
}
