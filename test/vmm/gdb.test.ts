// The GDB stub on a running machine (vm.gdbServer): the real gdb in batch mode against a 64-bit
// guest on the soft CPU (breakpoint, registers, memory, stepi, watchpoint, detach with the guest
// running to its end), and a raw client for what gdb does not do on demand: the interrupt byte,
// a second client, and hostile input (garbage, bad checksums, a 1 MB packet, bad arguments), with
// the machine unaffected.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { PacketReader, encodePacket, type Incoming } from '../../src/vmm/gdb/packet.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';
import { assembleText, needsNasm } from '../helpers/nasm.js';
import { REPO_ROOT, hasTool, tempDir } from '../helpers/tools.js';
import { readFileSync } from 'node:fs';

const LOAD = 0x100000;
const needsGdb = { skip: !hasTool('nasm') ? 'nasm not installed' : !hasTool('gdb') ? 'gdb not installed' : false };

/** guests/gdb/target.asm and its labels' addresses (assembled again with a table of them at the end). */
function targetGuest(): { image: Uint8Array; at: Record<string, number> } {
  const source = readFileSync(join(REPO_ROOT, 'guests', 'gdb', 'target.asm'), 'utf8');
  const labels = ['start', 'sum', 'store', 'spin', 'done', 'value', 'go', 'status'];
  const image = assembleText(source);
  const table = assembleText(`${source}\nalign 8\n${labels.map((l) => `dq ${l}`).join('\n')}\n`);
  const dv = new DataView(table.buffer, table.byteOffset);
  const base = image.length + ((8 - (image.length % 8)) % 8);
  const at: Record<string, number> = {};
  labels.forEach((l, k) => (at[l] = Number(dv.getBigUint64(base + 8 * k, true))));
  return { image, at };
}

async function startMachine(dir: string): Promise<{ vm: VirtualMachine; port: number; at: Record<string, number>; console: () => string }> {
  const { image, at } = targetGuest();
  const kernel = join(dir, 'target.bin');
  writeFileSync(kernel, image);
  const vm = await VirtualMachine.create({ kernel, flat: { loadAddr: LOAD, mode: 'long64' }, accel: 'soft', memory: 16 << 20, timeoutMs: 240_000 });
  const server = await vm.gdbServer({ port: 0, wait: true });
  let out = '';
  vm.console.on('data', (b: Buffer) => (out += b.toString('latin1')));
  vm.start();
  return { vm, port: server.port, at, console: () => out };
}

const hex = (n: number) => `0x${n.toString(16)}`;

test('gdb: breakpoint, registers, memory, stepi, watchpoint and detach on a running guest (soft)', needsGdb, async (t) => {
  const dir = tempDir(t);
  const { vm, port, at, console } = await startMachine(dir);
  const ex = [
    'set pagination off', 'set confirm off',
    `target remote 127.0.0.1:${port}`,
    'p/x $pc',
    `break *${hex(at.sum!)}`,
    'continue',
    'p/x $rax', 'p/x $rbx',
    'stepi',
    'p/x $pc', 'p/x $rax',
    'set $rbx = 0x5555', 'p/x $rbx',
    `x/2xb ${hex(at.sum!)}`,
    `watch *(long *)${hex(at.value!)}`,
    'continue',
    'p/x $pc',
    'delete',
    `set var *(char *)${hex(at.status!)} = 0x21`,
    `set var *(long *)${hex(at.go!)} = 1`,
    `x/2xg ${hex(at.value!)}`,
    'p/x $cr0', 'p/x $efer',
    'detach',
  ];
  const args = ['-batch', '-nx', ...ex.flatMap((e) => ['-ex', e])];
  const { stdout } = await promisify(execFile)('gdb', args, { timeout: 200_000 });
  const exited = await vm.exited;
  const lines = stdout.split('\n');
  const values = lines.filter((l) => /^\$\d+ = /.test(l)).map((l) => l.replace(/^\$\d+ = /, ''));
  assert.deepEqual(values.slice(0, 7), [hex(LOAD), '0x1111', '0x2222', hex(at.store!), '0x3333', '0x5555'].concat([hex(at.spin!)]), stdout);
  assert.match(stdout, new RegExp(`Breakpoint 1, 0x0*${at.sum!.toString(16)} in`), 'the breakpoint stopped the guest');
  assert.match(stdout, new RegExp(`${hex(at.sum!)}:\\s+0x48\\s+0x01`), 'memory shows the ADD, not the INT3 under it');
  assert.match(stdout, /Hardware watchpoint 2: \*\(long \*\)0x[0-9a-f]+\s+Old value = 0\s+New value = 13107/, 'the watchpoint caught the store');
  assert.match(stdout, new RegExp(`${hex(at.value!)}:\\s+0x0*3333\\s+0x0*1\\b`), 'memory written by gdb');
  assert.equal(values[7], '0x80000011', 'CR0 (PG, ET, PE) from the system feature');
  assert.equal(values[8], '0x500', 'EFER (LMA, LME)');
  assert.match(stdout, /\[Inferior 1 \(Remote target\) detached\]/);
  assert.deepEqual(exited.end, { how: 'debug-exit', status: 2 * 0x21 + 1 }, 'the guest ran to its end after detach');
  assert.match(console(), /done/);
});

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

test('gdb stub: interrupt, a second client refused, hostile input answered without harm (soft)', needsNasm, async (t) => {
  const dir = tempDir(t);
  const { vm, port, at, console } = await startMachine(dir);
  const c = await RawClient.open(port);
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
    assert.equal(await c.ask('mffffffffffff0000,10'), 'E0e', 'unmapped virtual address');
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
    assert.equal(regs.slice(16 * 16, 16 * 16 + 16), '0000100000000000', 'RIP unchanged at the entry');

    // monitor commands
    const info = await c.ask(`qRcmd,${Buffer.from('info registers').toString('hex')}`);
    assert.ok(info.startsWith('O'));
    assert.match(Buffer.from(info.slice(1), 'hex').toString(), /RIP=0000000000100000[\s\S]*CR0=/);
    assert.equal(await c.packet(), 'OK');
    const trace = await c.ask(`qRcmd,${Buffer.from('trace cpu 3').toString('hex')}`);
    const traced = Buffer.from(trace.slice(1), 'hex').toString();
    assert.match(traced, /0000000000100000: b8 11 11 00 00 +mov +\$0x1111,%eax/);
    assert.equal(traced.trim().split('\n').length, 3);
    assert.equal(await c.packet(), 'OK');

    // Continue, then the interrupt byte stops the spinning guest.
    c.write(encodePacket('c'));
    assert.equal((await c.next()).kind, 'ack');
    c.write(Uint8Array.of(0x03));
    assert.equal(await c.packet(), 'T02thread:1;');
    const pc = (await c.ask('p10')).match(/../g)!.reverse().join('');
    assert.ok(BigInt(`0x${pc}`) >= BigInt(at.spin!) && BigInt(`0x${pc}`) < BigInt(at.done!), `interrupted in the spin loop (RIP 0x${pc})`);

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
