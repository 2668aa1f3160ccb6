import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { parseAccel } from '../../backends/open.js';
import { TsvmmError } from '../../common/errors.js';
import type { EntryMode } from '../../loader/load-result.js';
import { VirtualMachine, type VmExited } from '../../vmm/virtual-machine.js';
import { ACCEL_OPTION, parseCommandArgs } from '../args.js';
import type { Command, CommandIo } from '../command.js';

const CTRL_A = 0x01;
/** On a terminal, typed bytes the guest has not taken yet beyond this many are dropped (stdin keeps being read, for Ctrl-A x). */
const TYPED_BACKLOG = 1 << 20;

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
    let traceCpu: number | undefined;
    for (const t of values.trace!) {
      const cpu = /^cpu(?:=(\d+))?$/.exec(t);
      if (cpu) traceCpu = cpu[1] === undefined ? 100_000 : Number(cpu[1]);
      else if (t !== 'exits') throw new TsvmmError('TSVMM_USAGE', `unknown --trace '${t}' (exits, cpu[=N])`);
    }
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
      traceCpu,
      pvh: values.pvh,
    });
    vm.on('log', (message) => io.err(`tsvmm: ${message}\n`));
    const output = await connectOutput(vm, io, serial);
    const deadline = timeout === undefined ? Infinity : Date.now() + timeout * 1000;
    const stopInput = connectInput(vm, io);
    vm.start();
    const exited = await vm.exited;
    stopInput();
    const outputFailure = await output.finish(deadline);
    const why = outputFailure ?? describe(exited);
    if (why) io.err(`\n${why}\n`);
    if (values.trace!.includes('exits')) {
      io.err(`exits: ${Object.entries(exited.exits).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}\n`);
      if (exited.inlineIo) io.err(`port I/O served inline (no exit): ${exited.inlineIo}\n`);
      const cpu = Object.entries(exited.cpu);
      if (cpu.length > 0) io.err(`cpu: ${cpu.map(([k, n]) => `${k} ${n}`).join(', ')}\n`);
    }
    return outputFailure ? 1 : exitStatus(exited);
  },
};

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
