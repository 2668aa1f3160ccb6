// The GDB stub on a running machine (vm.gdbServer), debugged by the real gdb in batch mode with the
// guest's symbols: guests/gdb/target.asm, a multiboot kernel in an ELF64 file (`file target.elf`).
// On each backend (the kvm ones skip where /dev/kvm is missing): `break SYMBOL`, registers the
// guest set, stepi landing on the expected addresses, a watchpoint on a variable with its old and
// new values; stepi and registers from the entry without a breakpoint, memory read (what the guest
// stored) and written (what the guest then prints and ends with), Ctrl-C of the spinning guest,
// and detach with the guest running to its end. Then a raw client for what gdb does not do on
// demand: a second client, hostile input (garbage, bad checksums, a 1 MB packet, bad arguments)
// with the machine unaffected, the monitor commands.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import type { Accel } from '../../src/backends/open.js';
import { PacketReader, encodePacket, type Incoming } from '../../src/vmm/gdb/packet.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { KVM_ON_QEMU_TCG, kvmUnavailable } from '../helpers/kvm.js';
import { gdbBatch, printedValues } from '../helpers/gdb.js';
import { linkedGuest, linkedGuestUnavailable } from '../helpers/nasm.js';
import { hasTool, tempDir } from '../helpers/tools.js';

const GUEST = ['gdb/target.asm', 'gdb/target.ld'] as const;
const tools = linkedGuestUnavailable(...GUEST);
const withGdb: { skip: string | false } = { skip: tools || (!hasTool('gdb') ? 'gdb not installed' : false) };

/**
 * Breakpoints and watchpoints on kvm in the nested-KVM run (see test/nvmm/debug.test.ts): QEMU's
 * TCG, the CPU there, neither intercepts a nested INT3 as #BP nor arms DR7 at VMRUN, so the guest
 * runs through them. Stepping, memory, registers and the interrupt work there, and everything
 * runs on a real KVM host.
 */
const QEMU_TCG_DEBUG = 'QEMU TCG does not intercept a nested INT3 as #BP and does not arm DR7 breakpoints at VMRUN';

/** The ELF guest and its symbols' addresses. */
function targetElf(dir: string): { path: string; at: Record<string, number> } {
  const { elf, symbols } = linkedGuest(...GUEST);
  const path = join(dir, 'target.elf');
  writeFileSync(path, elf);
  return { path, at: symbols };
}

interface Machine {
  vm: VirtualMachine;
  port: number;
  elf: string;
  at: Record<string, number>;
  console: () => string;
  /** Resolves once the guest's console shows `text`. */
  printed: (text: string) => Promise<void>;
}

/** The ELF guest on `accel`, paused at its entry (gdbServer's wait) until a client resumes it. */
async function startMachine(dir: string, accel: Accel): Promise<Machine> {
  const { path, at } = targetElf(dir);
  const vm = await VirtualMachine.create({ kernel: path, accel, memory: 16 << 20, timeoutMs: 240_000 });
  const server = await vm.gdbServer({ port: 0, wait: true });
  let out = '';
  const waiters: (() => void)[] = [];
  vm.console.on('data', (b: Buffer) => {
    out += b.toString('latin1');
    for (const w of waiters.splice(0)) w();
  });
  vm.start();
  const printed = async (text: string) => {
    while (!out.includes(text)) await new Promise<void>((resolve) => waiters.push(resolve));
  };
  return { vm, port: server.port, elf: path, at, console: () => out, printed };
}

const gdb = gdbBatch;

const hex = (n: number) => `0x${n.toString(16)}`;
/** The values gdb printed for `p` commands, in order. */
const printed = printedValues;

/** Why the test cannot run on `accel` here, or false. */
function skipOn(accel: Accel, needsDebugRegisters: boolean): string | false {
  if (withGdb.skip) return withGdb.skip;
  if (accel !== 'kvm') return false;
  return kvmUnavailable() ?? (needsDebugRegisters && KVM_ON_QEMU_TCG ? QEMU_TCG_DEBUG : false);
}

for (const accel of ['soft', 'kvm'] as const) {
  test(`gdb on an ELF guest: break SYMBOL, registers, stepi, watch a variable (${accel})`, async (t: TestContext) => {
    const skip = skipOn(accel, true);
    if (skip) return t.skip(skip);
    const dir = tempDir(t);
    const { vm, port, elf, at, console } = await startMachine(dir, accel);
    const out = await gdb([
      'set pagination off', 'set confirm off',
      `file ${elf}`,
      `target remote 127.0.0.1:${port}`,
      'info registers rip',
      'break sum',
      'continue',
      'info registers rip',
      'p/x $rax', 'p/x $rbx',
      'stepi', 'p/x $pc', 'p/x $rax',
      'set $rbx = 0x5555', 'p/x $rbx',
      'watch {long}&value',
      'continue',
      'p/x $pc',
      'delete',
      'stepi', 'p/x $pc', 'stepi', 'p/x $pc', 'stepi', 'p/x $pc',
      'set {char}&status = 0x21',
      'set {long}&go = 1',
      'detach',
    ]);
    const exited = await vm.exited;
    assert.match(out, new RegExp(`rip\\s+${hex(at._start!)}\\s+${hex(at._start!)} <_start>`), 'paused at the ELF entry');
    assert.match(out, new RegExp(`Breakpoint 1 at ${hex(at.sum!)}`), 'break SYMBOL at the symbol');
    assert.match(out, new RegExp(`Breakpoint 1, 0x0*${at.sum!.toString(16)} in sum \\(\\)`), 'the breakpoint stopped the guest');
    assert.match(out, new RegExp(`rip\\s+${hex(at.sum!)}\\s+${hex(at.sum!)} <sum>`));
    // After `watch`'s stop: the instruction after the store (`mov [value], rax`, 8 bytes), then
    // `lea rsi, [spinning]` (8), `call print` into print.
    const afterStore = at.store! + 8;
    assert.deepEqual(printed(out), ['0x1111', '0x2222', hex(at.store!), '0x3333', '0x5555', hex(afterStore), hex(afterStore + 8), hex(at.print!), hex(at.print! + 4)], out);
    assert.match(out, /Hardware watchpoint 2: \{long\}&value\s+Old value = 0\s+New value = 13107\b/, 'the watchpoint caught the store with its values');
    assert.match(out, /\[Inferior 1 \(Remote target\) detached\]/);
    assert.deepEqual(exited.end, { how: 'debug-exit', status: 2 * 0x21 + 1 }, 'the guest ran to its end after detach');
    assert.match(console(), /spin\r?\ndone\r?\n/);
  });

  test(`gdb on an ELF guest: stepi and registers from the entry, memory read and written, Ctrl-C of the spinning guest, detach (${accel})`, async (t: TestContext) => {
    const skip = skipOn(accel, false);
    if (skip) return t.skip(skip);
    const dir = tempDir(t);
    const { vm, port, elf, at, console, printed: shown } = await startMachine(dir, accel);
    const out = await gdb([
      'set pagination off', 'set confirm off',
      `file ${elf}`,
      `target remote 127.0.0.1:${port}`,
      // The entry's first instructions (32-bit code): mov esp, stack_top; mov edi, pml4 (5 bytes each).
      'stepi', 'p/x $pc', 'p/x $esp',
      'set $rbx = 0x5555',
      'stepi', 'p/x $pc', 'p/x $edi', 'p/x $rbx',
      'x/s &msg',
      'set {int}&msg = 0x21216968', // "hi!!": the guest prints msg at its end
      'x/s &msg',
      'continue', // the guest stores value, prints "spin" and spins: SIGINT then
      'info registers rip',
      'x/gx &value',
      'p/x $cr0', 'p/x $efer',
      'set {char}&status = 0x10',
      'set {long}&go = 1',
      'detach',
    ], shown('spin\n'));
    const exited = await vm.exited;
    assert.match(out, new RegExp(`${hex(at.msg!)}( <msg>)?:\\s+"done\\\\n"`), 'x/s reads the guest memory');
    assert.match(out, new RegExp(`${hex(at.msg!)}( <msg>)?:\\s+"hi!!\\\\n"`), 'and shows what set wrote');
    assert.match(out, /Program received signal SIGINT, Interrupt\./, 'Ctrl-C stopped the running guest');
    const rip = /rip\s+(0x[0-9a-f]+)\s/.exec(out);
    assert.ok(rip, out);
    assert.ok(Number(rip[1]) >= at.spin! && Number(rip[1]) < at.done!, `interrupted in the spin loop (RIP ${rip[1]})`);
    assert.match(out, new RegExp(`${hex(at.value!)}( <value>)?:\\s+0x0*3333\\b`), 'the sum the guest stored');
    assert.deepEqual(printed(out), [hex(at._start! + 5), hex(at.stack_top!), hex(at._start! + 10), hex(at.pml4!), '0x5555', '0x80000011', '0x500'],
      'stepped twice (ESP and EDI loaded, RBX as gdb wrote it), then CR0 (PG, ET, PE) and EFER (LMA, LME) from the system feature');
    assert.match(out, /\[Inferior 1 \(Remote target\) detached\]/);
    assert.deepEqual(exited.end, { how: 'debug-exit', status: 2 * 0x10 + 1 }, 'the guest ran to its end with the status gdb wrote');
    assert.match(console(), /spin\r?\nhi!!\r?\n/, 'the guest printed what gdb wrote');
  });
}

/** A raw protocol client (no acknowledgements mode is not asked for: every packet is acked). */
class RawClient {
  private readonly socket: Socket;
  private readonly reader = new PacketReader();
  private readonly got: Incoming[] = [];
  private waiters: (() => void)[] = [];
  closed = false;

  constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (b: Buffer) => {
      this.got.push(...this.reader.feed(b));
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('error', () => {});
  }

  static async open(port: number): Promise<RawClient> {
    const s = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
    return new RawClient(s);
  }

  write(bytes: Uint8Array | string): void {
    this.socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  }

  /** The next frame from the stub (ack, nak or packet). */
  async next(): Promise<Incoming> {
    while (this.got.length === 0) {
      if (this.closed) throw new Error('connection closed');
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    return this.got.shift()!;
  }

  /** The next packet's data, skipping acknowledgements. */
  async packet(): Promise<string> {
    for (;;) {
      const m = await this.next();
      if (m.kind === 'packet') {
        this.write('+');
        return m.data;
      }
      if (m.kind === 'nak' || m.kind === 'bad') return `<${m.kind}>`;
    }
  }

  /** Sends a command and returns its reply. */
  async ask(data: string): Promise<string> {
    this.write(encodePacket(data));
    return this.packet();
  }

  async waitClosed(): Promise<void> {
    while (!this.closed) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  end(): void {
    this.socket.destroy();
  }
}

test('gdb stub: a second client refused, hostile input answered without harm, monitor commands (soft)', { skip: tools }, async (t) => {
  const dir = tempDir(t);
  const { vm, port, at, console } = await startMachine(dir, 'soft');
  const c = await RawClient.open(port);
  const entry = at._start!.toString(16).padStart(16, '0');
  try {
    assert.match(await c.ask('qSupported:multiprocess+;swbreak+;hwbreak+'), /PacketSize=4000;qXfer:features:read\+;swbreak\+;hwbreak\+;vContSupported\+/);
    assert.equal(await c.ask('?'), 'T02thread:1;', 'paused at start (--gdb-wait)');
    assert.equal(await c.ask('qfThreadInfo'), 'm1');
    assert.equal(await c.ask('qsThreadInfo'), 'l');
    assert.equal(await c.ask('qOffsets'), 'Text=0;Data=0;Bss=0');
    assert.match(await c.ask('qXfer:features:read:target.xml:0,ffff'), /^l<\?xml[\s\S]*<architecture>i386:x86-64<\/architecture>[\s\S]*name="fs_base"[\s\S]*name="cr3"[\s\S]*<\/target>$/);

    // A second client is refused while this one is connected.
    const second = await RawClient.open(port);
    await second.waitClosed();

    // Hostile input: each answered (NAK or error), none of it reaching the machine.
    c.write('garbage\x00\xff');
    c.write('$g#00');
    assert.equal((await c.next()).kind, 'nak', 'bad checksum');
    c.write(`$${'A'.repeat(1 << 20)}#00`);
    assert.equal((await c.next()).kind, 'nak', '1 MB packet');
    assert.equal(await c.ask('m0,'), 'E01');
    assert.equal(await c.ask(`m${'f'.repeat(40)},4`), 'E01', 'address of more than 64 bits');
    assert.equal(await c.ask('mffffffffffff0000,10'), 'E0e', 'an address past 4 GiB while paging is off');
    assert.equal((await c.ask('m100000,ffffffff')).length, 2 * 0x2000, 'a huge length is a short read');
    assert.equal(await c.ask('Gabc'), 'E01');
    assert.equal(await c.ask('P10=12'), 'E01', 'RIP from a 1-byte value');
    assert.equal(await c.ask('Z1,100000,1,junk'), 'E01');
    assert.equal(await c.ask('Z2,100000,400'), 'E1c', 'a watchpoint larger than the debug registers');
    assert.equal(await c.ask('Z2,100000,100000'), 'E01', 'a length of more than 4 hex digits');
    assert.equal(await c.ask('Mffffffffffff0000,1:00'), 'E0e');
    assert.equal(await c.ask('X100000,1:'), 'E01', 'length and data disagree');
    assert.equal(await c.ask('vCont;x'), 'E01');
    assert.equal(await c.ask('Hg99'), 'E01', 'no such thread');
    assert.equal(await c.ask('qRcmd,zz'), 'E01');
    assert.equal(await c.ask('unknown-command'), '');
    const regs = await c.ask('g');
    assert.equal(regs.slice(16 * 16, 16 * 16 + 16), Buffer.from(entry, 'hex').reverse().toString('hex'), 'RIP unchanged at the entry');

    // monitor commands
    const info = await c.ask(`qRcmd,${Buffer.from('info registers').toString('hex')}`);
    assert.ok(info.startsWith('O'));
    assert.match(Buffer.from(info.slice(1), 'hex').toString(), new RegExp(`RIP=${entry}[\\s\\S]*CR0=`));
    assert.equal(await c.packet(), 'OK');
    const trace = await c.ask(`qRcmd,${Buffer.from('trace cpu 3').toString('hex')}`);
    const traced = Buffer.from(trace.slice(1), 'hex').toString();
    // _start's first instruction, in 32-bit code: mov esp, stack_top.
    assert.match(traced, new RegExp(`^${entry}: bc ${[0, 8, 16, 24].map((s) => ((at.stack_top! >> s) & 0xff).toString(16).padStart(2, '0')).join(' ')} +mov +\\$${hex(at.stack_top!)},%esp`));
    assert.equal(traced.trim().split('\n').length, 3);
    assert.equal(await c.packet(), 'OK');

    // The guest is let go: `go` and `status` written, the client detaches.
    assert.equal(await c.ask(`M${at.status!.toString(16)},1:07`), 'OK');
    assert.equal(await c.ask(`M${at.go!.toString(16)},8:0100000000000000`), 'OK');
    assert.equal(await c.ask('D'), 'OK');
  } finally {
    c.end();
  }
  const exited = await vm.exited;
  assert.deepEqual(exited.end, { how: 'debug-exit', status: 2 * 7 + 1 });
  assert.match(console(), /done/);
});
