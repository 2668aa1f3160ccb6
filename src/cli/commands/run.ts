import { createWriteStream, readFileSync, statSync } from 'node:fs';
import { parseAccel } from '../../backends/open.js';
import { TsvmmError } from '../../common/errors.js';
import type { EntryMode } from '../../loader/load-result.js';
import { VirtualMachine, type VmExited } from '../../vmm/virtual-machine.js';
import { DEFAULT_PROFILE_HZ, MAX_PROFILE_HZ } from '../../backends/soft/profile.js';
import { formatProfile, parseSymbolMap, type SymbolMap } from '../../vmm/profile.js';
import { ACCEL_OPTION, parseCommandArgs } from '../args.js';
import type { Command, CommandIo } from '../command.js';

const CTRL_A = 0x01;

/** QEMU's -m: a number of MiB, or a number with a K/M/G suffix. */
export function parseMemorySize(text: string): number {
  const m = /^(\d+)([KMG]?)i?B?$/i.exec(text.trim());
  if (!m) throw new TsvmmError('TSVMM_USAGE', `bad memory size '${text}' (examples: 256, 512M, 2G)`);
  const unit = { '': 1 << 20, K: 1 << 10, M: 1 << 20, G: 1 << 30 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * unit;
}

/** --flat ADDR[:MODE]: a flat binary loaded at ADDR, entered in real16 (default), protected32 or long64. */
function parseFlat(text: string): { loadAddr: number; mode: EntryMode } {
  const [addr, mode = 'real16'] = text.split(':');
  const loadAddr = Number(addr);
  if (!Number.isSafeInteger(loadAddr) || loadAddr < 0) throw new TsvmmError('TSVMM_USAGE', `bad --flat address '${addr}'`);
  if (!['real16', 'protected32', 'long64'].includes(mode)) throw new TsvmmError('TSVMM_USAGE', `bad --flat mode '${mode}' (real16, protected32, long64)`);
  return { loadAddr, mode: mode as EntryMode };
}

/** The exit status for how the guest ended (QEMU-like: a debug-exit write gives its own value). */
export function exitStatus(exited: VmExited): number {
  const end = exited.end;
  switch (end.how) {
    case 'reset': case 'poweroff': case 'stopped': return 0;
    case 'debug-exit': return end.status & 0xff;
    case 'triple-fault': return 3;
    case 'timeout': return 4;
    case 'error': return 1;
  }
}

function describe(exited: VmExited): string | undefined {
  const end = exited.end;
  switch (end.how) {
    case 'triple-fault': return `tsvmm: the guest triple-faulted: ${end.report}`;
    case 'timeout': return `tsvmm: TSVMM_TIMEOUT: ${end.report}`;
    case 'error': return `tsvmm: ${end.code}: ${end.message}`;
    default: return undefined;
  }
}

/** A symbol map larger than this is refused (Linux's kallsyms with modules: ~15 MB). */
const MAX_SYMBOL_FILE_BYTES = 256 << 20;

interface TraceOptions {
  exits: boolean;
  cpu?: number;
  profile?: { hz: number; delayMs: number; symbols?: SymbolMap; top?: number; from?: string; to?: string };
}

/** The --trace values: each a comma-separated list of exits, cpu[=N], profile[=HZ], symbols=FILE, top=N, delay=SECONDS, from=TEXT, to=TEXT. */
function parseTrace(values: string[]): TraceOptions {
  const t: TraceOptions = { exits: false };
  let hz: number | undefined, symbols: string | undefined, top: number | undefined, delay: number | undefined;
  let from: string | undefined, to: string | undefined;
  const count = (text: string, what: string, max: number) => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < 1 || n > max) throw new TsvmmError('TSVMM_USAGE', `bad --trace ${what}=${text} (1 to ${max})`);
    return n;
  };
  for (const item of values.flatMap((v) => v.split(','))) {
    const [name, value] = item.includes('=') ? [item.slice(0, item.indexOf('=')), item.slice(item.indexOf('=') + 1)] : [item, undefined];
    if (name === 'exits' && value === undefined) t.exits = true;
    else if (name === 'cpu') t.cpu = value === undefined ? 100_000 : count(value, 'cpu', Number.MAX_SAFE_INTEGER);
    else if (name === 'profile') hz = value === undefined ? DEFAULT_PROFILE_HZ : count(value, 'profile', MAX_PROFILE_HZ);
    else if (name === 'symbols' && value) symbols = value;
    else if (name === 'top' && value !== undefined) top = count(value, 'top', 100_000);
    else if (name === 'delay' && value !== undefined) {
      delay = Number(value);
      if (!/^\d+(\.\d+)?$/.test(value) || delay > 1e6) throw new TsvmmError('TSVMM_USAGE', `bad --trace delay=${value} (seconds)`);
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

  --kernel FILE        bzImage (Linux boot protocol), multiboot kernel, ELF vmlinux with a PVH note,
                       or flat binary with --flat
  --pvh                decompress a bzImage here and enter the kernel through PVH (skips the
                       in-guest decompressor)
  --initrd FILE        initial ramdisk (for multiboot: the first module)
  --append CMDLINE     kernel command line
  -m, --memory SIZE    guest RAM: MiB, or with a K/M/G suffix (default 256M)
  --smp N              vCPUs (default 1)
  --accel kvm|soft|auto  backend (default auto)
  --serial stdio|file:PATH  where COM1 goes (default stdio; input is always stdin)
  --flat ADDR[:MODE]   load the kernel as a flat binary at ADDR; MODE real16 (default), protected32, long64
  --timeout SECONDS    end the run (status 4, with a report) if the guest is still running
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

On a terminal, Ctrl-A x ends the machine (Ctrl-A Ctrl-A sends Ctrl-A), as in QEMU.
Exit status: 0 after a reset, power-off or Ctrl-A x; the value written to the debug-exit port
(0x501: (value << 1) | 1); 3 after a triple fault; 4 after --timeout; 1 on errors.
`,
  async run(argv, io) {
    const { values } = parseCommandArgs(argv, {
      ...ACCEL_OPTION,
      kernel: { type: 'string' }, initrd: { type: 'string' }, append: { type: 'string', default: '' },
      memory: { type: 'string', short: 'm', default: '256M' }, smp: { type: 'string', default: '1' },
      serial: { type: 'string', default: 'stdio' },
      flat: { type: 'string' }, timeout: { type: 'string' }, trace: { type: 'string', multiple: true, default: [] },
      pvh: { type: 'boolean', default: false },
    });
    if (!values.kernel) throw new TsvmmError('TSVMM_USAGE', '--kernel is required');
    const smp = Number(values.smp);
    if (!Number.isInteger(smp) || smp < 1) throw new TsvmmError('TSVMM_USAGE', `bad --smp '${values.smp}'`);
    const timeout = values.timeout === undefined ? undefined : Number(values.timeout);
    if (timeout !== undefined && !(timeout > 0)) throw new TsvmmError('TSVMM_USAGE', `bad --timeout '${values.timeout}'`);
    const trace = parseTrace(values.trace!);
    const gate = trace.profile?.from !== undefined || trace.profile?.to !== undefined ? new SharedArrayBuffer(4) : undefined;
    const serial = values.serial!;
    if (serial !== 'stdio' && !serial.startsWith('file:')) throw new TsvmmError('TSVMM_USAGE', `bad --serial '${serial}' (stdio or file:PATH)`);

    const vm = await VirtualMachine.create({
      kernel: values.kernel,
      initrd: values.initrd,
      cmdline: values.append,
      memory: parseMemorySize(values.memory!),
      cpus: smp,
      accel: parseAccel(values.accel!),
      flat: values.flat === undefined ? undefined : parseFlat(values.flat),
      timeoutMs: timeout === undefined ? undefined : timeout * 1000,
      traceCpu: trace.cpu,
      profile: trace.profile && { hz: trace.profile.hz, delayMs: trace.profile.delayMs, gate },
      pvh: values.pvh,
    });
    vm.on('log', (message) => io.err(`tsvmm: ${message}\n`));
    if (gate) profileGate(vm, trace.profile!.from, trace.profile!.to, new Int32Array(gate));
    if (serial === 'stdio') vm.console.on('data', (b: Buffer) => io.out(b.toString('latin1')));
    else vm.console.pipe(createWriteStream(serial.slice('file:'.length)));
    const stopInput = connectInput(vm, io);
    vm.start();
    const exited = await vm.exited;
    stopInput();
    const why = describe(exited);
    if (why) io.err(`\n${why}\n`);
    if (trace.profile && exited.profile) io.err(formatProfile(exited.profile, trace.profile));
    if (trace.exits) {
      io.err(`exits: ${Object.entries(exited.exits).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}\n`);
      if (exited.inlineIo) io.err(`port I/O served inline (no exit): ${exited.inlineIo}\n`);
      const cpu = Object.entries(exited.cpu);
      if (cpu.length > 0) io.err(`cpu: ${cpu.map(([k, n]) => `${k} ${n}`).join(', ')}\n`);
    }
    return exitStatus(exited);
  },
};

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

/** Standard input to the guest; on a terminal in raw mode with QEMU's Ctrl-A escapes. */
function connectInput(vm: VirtualMachine, _io: CommandIo): () => void {
  const stdin = process.stdin;
  const raw = stdin.isTTY === true;
  if (raw) stdin.setRawMode(true);
  let escape = false;
  const onData = (chunk: Buffer) => {
    if (!raw) return void vm.console.write(chunk);
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
    if (out.length) vm.console.write(Buffer.from(out));
  };
  stdin.on('data', onData);
  return () => {
    stdin.off('data', onData);
    if (raw) stdin.setRawMode(false);
    stdin.pause();
  };
}
