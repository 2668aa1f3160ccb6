// Hostile guests, each run as `tsvmm run` (bin/tsvmm.js, a child process) on both backends: a
// triple fault, `cli; hlt`, junk to every port, reads and writes across the unbacked address space,
// every MSR in a few ranges, seeded random code in each mode, a loop that overwrites its own code,
// code started at every byte of a few pages, random bytes sprayed over a few pages and run round
// after round, a serial flood, devices programmed with nonsense and an interrupt storm. Each run
// must end with its exit status and its one-line reason on standard error (never a crash,
// TSVMM_INTERNAL or a stack trace), and the child's peak RSS must stay within RSS_ALLOWANCE_KIB of
// a run that ends at once (or, for the code started at every byte, its engine heap within a cap).
// Guests: guests/hostile/. The kvm cases skip where KVM is unusable and run unchanged on a real
// /dev/kvm (scripts/kvm-nested.sh picks them by "(kvm)" in their names).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { UNKNOWN_LOGGED } from '../../src/devices/bus.js';
import { kvmOrSkip } from '../helpers/kvm.js';
import { hasTool } from '../helpers/tools.js';
import { VirtualMachine } from '../../src/vmm/virtual-machine.js';

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'tsvmm.js');
const ACCELS = ['soft', 'kvm'] as const;
type Accel = (typeof ACCELS)[number];

/** Guest RAM for every run: small, so that a guest touching all of it moves RSS little. */
const MEMORY_MIB = 16;
const RAM_TOP = MEMORY_MIB << 20;
/**
 * How far a hostile run's peak RSS may exceed that of a run that ends at once (same backend, same
 * RAM): all of guest RAM touched (16 MiB) plus 48 MiB for what a busy machine legitimately
 * holds (the soft CPU's decoded blocks and compiled WebAssembly, V8's heap at work). What the
 * host keeps per guest action (a byte, an access, an interrupt) is bounded, so a run never
 * needs more however long the guest goes on; a queue or log that grew with the guest's actions
 * (as in a flood of millions of them) would not fit.
 */
const RSS_ALLOWANCE_KIB = 64 * 1024;
/**
 * --timeout for guests that end by themselves: a hang becomes status 4 and a failed test, not a
 * stuck run (within npm test's 300 s per test; the slowest case, every port on KVM inside QEMU,
 * makes 400,000 exits).
 */
const SAFETY_TIMEOUT_S = 200;

/** How the board enters each mode's flat images (the guests' ORG); random-code.asm runs real mode at 0x1000:0. */
const FLAT = { 16: '0x8000:real16', 32: '0x100000:protected32', 64: '0x100000:long64' } as const;
const RANDOM_FLAT = { ...FLAT, 16: '0x10000:real16' } as const;

let scratch: string | undefined;
let images = 0;
after(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Assembles guests/hostile/NAME.asm with `defines` (and `tail` appended) into a new file; returns its path. */
function guest(name: string, defines: Record<string, number> = {}, tail: Uint8Array = new Uint8Array(0)): string {
  scratch ??= mkdtempSync(join(tmpdir(), 'tsvmm-hostile-'));
  const path = join(scratch, `${images++}-${name}.bin`);
  writeFileSync(path, Buffer.concat([assemble(`hostile/${name}.asm`, { defines }), tail]));
  return path;
}

interface Ran {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
  /** The child's VmHWM (peak RSS) as last sampled while it ran. */
  peakKiB: number;
}

/**
 * Runs `tsvmm run --accel ACCEL -m MEMORY_MIB ARGS` (node with `nodeArgs` before the script),
 * standard input empty, sampling the child's peak RSS (VmHWM, which only grows) while it runs. A
 * run still going after `limitMs` is killed (signal SIGKILL): these runs must end by themselves or
 * by --timeout.
 */
function tsvmm(accel: Accel, args: string[], limitMs = (SAFETY_TIMEOUT_S + 30) * 1000, nodeArgs: string[] = []): Promise<Ran> {
  const child = spawn(process.execPath, [...nodeArgs, BIN, 'run', '--accel', accel, '-m', String(MEMORY_MIB), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  let peakKiB = 0;
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString('latin1')));
  const sample = () => {
    try {
      const kib = Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0);
      peakKiB = Math.max(peakKiB, kib);
    } catch { /* ended */ }
  };
  const sampler = setInterval(sample, 20);
  const killer = setTimeout(() => child.kill('SIGKILL'), limitMs);
  return new Promise((resolve) => child.on('close', (status, signal) => {
    clearInterval(sampler);
    clearTimeout(killer);
    resolve({ status, signal, stdout: Buffer.concat(out), stderr, peakKiB });
  }));
}

/** The peak RSS of a run that ends at once (a triple fault right after entry), once per backend. */
const baselines = new Map<Accel, number>();
async function baselineKiB(accel: Accel): Promise<number> {
  let kib = baselines.get(accel);
  if (kib === undefined) {
    const r = await tsvmm(accel, ['--kernel', guest('triple-fault', { MODE: 64 }), '--flat', FLAT[64]]);
    assert.equal(r.status, 3, r.stderr);
    kib = r.peakKiB;
    baselines.set(accel, kib);
  }
  return kib;
}

async function assertRssBounded(accel: Accel, r: Ran, what: string): Promise<void> {
  const base = await baselineKiB(accel);
  assert.ok(r.peakKiB > 0, `${what}: no RSS sample`);
  assert.ok(r.peakKiB - base <= RSS_ALLOWANCE_KIB, `${what}: peak RSS ${r.peakKiB} KiB, ${r.peakKiB - base} KiB above a run that ends at once (${base} KiB)`);
}

/** Lines on standard error, without the board's bounded notes (see NOTES). */
function reasonLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l !== '' && !NOTES.some((re) => re.test(l)));
}

/** The board's notes about accesses to nothing: each kind at most UNKNOWN_LOGGED lines and one to say the rest is not logged. */
const PORT_NOTE = /^tsvmm: (port 0x[0-9a-f]+: (read|write) of \d byte\(s\) with no device|more ports with nothing there)/;
const MMIO_NOTE = /^tsvmm: (MMIO 0x[0-9a-f]+: (read|write) of \d+ byte\(s\) with nothing mapped|more MMIO pages with nothing there)/;
const MSR_NOTE = /^tsvmm: ((rdmsr|wrmsr) of unknown MSR 0x[0-9a-f]+|more unknown MSRs): #GP/;
const NOTES = [PORT_NOTE, MMIO_NOTE, MSR_NOTE];

function assertNotesBounded(stderr: string, note: RegExp, what: string): void {
  const n = stderr.split('\n').filter((l) => note.test(l)).length;
  assert.ok(n <= UNKNOWN_LOGGED + 1, `${what}: ${n} notes`);
}

/**
 * Never a crash: the child exited (no signal), not with the internal-error status, without a
 * stack trace, and without "internal error" (the CLI's for a bug, the soft CPU's for an exception
 * in a handler, which ends the guest with TSVMM_GUEST).
 */
function assertNoCrash(r: Ran, what: string): void {
  assert.equal(r.signal, null, `${what}: killed by ${r.signal}\n${r.stderr}`);
  assert.notEqual(r.status, 70, `${what}: internal error\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /internal error|TSVMM_INTERNAL|^\s+at .*:\d+:\d+\)?$/m, what);
}

/** The one-line reason for a debug-exit write of VALUE, and its status. */
function assertDebugExit(r: Ran, value: number, what: string): void {
  assertNoCrash(r, what);
  const status = ((value << 1) | 1) & 0xff;
  assert.equal(r.status, status, `${what}\n${r.stderr}`);
  assert.deepEqual(reasonLines(r.stderr), [`tsvmm: the guest wrote 0x${value.toString(16)} to the debug-exit port (status ${status})`], what);
}

/** Runs `fn` on each item, two runs at a time (2 cores; each run is mostly one busy thread). */
async function twoAtATime<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += 2) await Promise.all(items.slice(i, i + 2).map(fn));
}

/** Skips the case where its backend or nasm is missing; true when it may run. */
function ready(t: TestContext, accel: Accel): boolean {
  if (!hasNasm()) {
    t.skip('nasm not installed');
    return false;
  }
  return accel === 'soft' || kvmOrSkip(t) !== undefined;
}

/** A seeded generator of 32-bit words (xorshift32), for random code that is the same on every run. */
function randomBytes(seed: number, length: number): Uint8Array {
  let s = seed >>> 0 || 1;
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    bytes[i] = s >>> 24;
  }
  return bytes;
}

/** Bytes of random code per run, and the seeds run in each mode with each IDT. */
const RANDOM_LENGTH = 4096;
const RANDOM_SEEDS = [1, 2];
/** The seeds of random-spray.asm, and its rounds (each a new spray of its pages) before it ends by itself. */
const SPRAY_SEEDS = [3, 4, 5, 6];
const SPRAY_ROUNDS = 40;

/** How a run of hostile code may end: each with its status and its one line on standard error. */
const ENDINGS: { name: string; status: (s: number) => boolean; line: RegExp | null }[] = [
  { name: 'triple fault', status: (s) => s === 3, line: /^tsvmm: the guest triple-faulted: triple fault at RIP 0x/ },
  { name: 'timeout', status: (s) => s === 4, line: /^tsvmm: TSVMM_TIMEOUT: timed out at RIP 0x/ },
  { name: 'debug-exit', status: (s) => (s & 1) === 1, line: /^tsvmm: the guest wrote 0x[0-9a-f]+ to the debug-exit port \(status \d+\)$/ },
  { name: 'reset or power-off', status: (s) => s === 0, line: null },
  // The guest did what the board cannot carry out: an instruction the MMIO assist does not
  // emulate (soft: imul, push or call on unbacked memory, an exception frame pushed there), an
  // emulation failure (kvm). Each is said in one line with its code.
  { name: 'guest error', status: (s) => s === 1, line: /^tsvmm: TSVMM_(GUEST|ASSIST): / },
];

function assertEndedWithReason(r: Ran, what: string): string {
  assertNoCrash(r, what);
  const lines = reasonLines(r.stderr);
  const ending = ENDINGS.find((e) => e.status(r.status!) && (e.line === null ? lines.length === 0 : lines.length === 1 && e.line.test(lines[0]!)));
  assert.ok(ending, `${what}: status ${r.status} with ${JSON.stringify(lines)}`);
  return ending.name;
}

for (const accel of ACCELS) {
  test(`hostile: a triple fault in each mode ends with status 3 and a report (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    await twoAtATime([16, 32, 64] as const, async (mode) => {
      const r = await tsvmm(accel, ['--kernel', guest('triple-fault', { MODE: mode }), '--flat', FLAT[mode], '--timeout', String(SAFETY_TIMEOUT_S)]);
      assertNoCrash(r, `mode ${mode}`);
      assert.equal(r.status, 3, `mode ${mode}: ${r.stderr}`);
      // (kvm_amd re-initializes the vCPU at a shutdown: the report may show the INIT state.)
      assert.match(r.stderr, /^\ntsvmm: the guest triple-faulted: triple fault at RIP 0x[0-9a-f]+ \(CS 0x[0-9a-f]+, RSP 0x[0-9a-f]+\); CR0 0x[0-9a-f]+ .*EFER 0x[0-9a-f]+\n$/, `mode ${mode}`);
    });
  });

  test(`hostile: cli; hlt with --timeout ends with status 4 and TSVMM_TIMEOUT (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    const r = await tsvmm(accel, ['--kernel', guest('cli-hlt'), '--flat', FLAT[16], '--timeout', '1']);
    assertNoCrash(r, 'cli; hlt');
    assert.equal(r.status, 4, r.stderr);
    assert.match(r.stderr, /^\ntsvmm: TSVMM_TIMEOUT: timed out at RIP 0x8002 \(CS 0x0, /);
  });

  test(`hostile: cli; hlt without a timeout ends at once: nothing can wake the vCPU (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    // KVM's in-kernel irqchip keeps a halted vCPU in the kernel, where the board cannot see
    // that nothing will wake it; there only --timeout (above) ends the run.
    if (accel === 'kvm') return t.skip('on kvm a halted vCPU waits in the in-kernel irqchip: only --timeout ends it');
    const r = await tsvmm(accel, ['--kernel', guest('cli-hlt'), '--flat', FLAT[16]], 60_000);
    assertNoCrash(r, 'cli; hlt');
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^\ntsvmm: TSVMM_GUEST: halted with no interrupt source at RIP 0x8002 \(CS 0x0, /);
  });

  test(`hostile: junk to every port with each size, and a read of each: the machine survives and ends by its own debug-exit write (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    const r = await tsvmm(accel, ['--kernel', guest('every-port'), '--flat', FLAT[32], '--timeout', String(SAFETY_TIMEOUT_S)]);
    assertDebugExit(r, 0x2a, 'every port');
    assert.ok(r.stdout.toString('latin1').endsWith('every port written and read\n'));
    assertNotesBounded(r.stderr, PORT_NOTE, 'ports with nothing there');
    await assertRssBounded(accel, r, 'every port');
  });

  test(`hostile: reads and junk writes across the unbacked 32-bit space: log lines and RSS bounded (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    const r = await tsvmm(accel, ['--kernel', guest('mmio-space', { RAM_TOP }), '--flat', FLAT[64], '--timeout', String(SAFETY_TIMEOUT_S)]);
    assertDebugExit(r, 0x2a, 'MMIO');
    assert.equal(r.stdout.toString('latin1'), 'mmio swept\n');
    assertNotesBounded(r.stderr, MMIO_NOTE, 'pages with nothing there');
    await assertRssBounded(accel, r, 'MMIO');
  });

  test(`hostile: every MSR in a few ranges read, written back or with junk: unknown ones #GP, log lines bounded (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    const r = await tsvmm(accel, ['--kernel', guest('msr-sweep'), '--flat', FLAT[64], '--timeout', String(SAFETY_TIMEOUT_S)]);
    assertDebugExit(r, 0x2a, 'MSRs');
    assertNotesBounded(r.stderr, MSR_NOTE, 'unknown MSRs');
    assert.equal(r.stdout.toString('latin1'), 'msrs swept\n');
    await assertRssBounded(accel, r, 'MSRs');
  });

  test(`hostile: seeded random code in real, protected and long mode, with no IDT and with one that counts: each run ends with a reason (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    await baselineKiB(accel);
    const seen = new Map<string, number>();
    const runs = ([16, 32, 64] as const).flatMap((mode) => [0, 1].flatMap((idt) => RANDOM_SEEDS.map((seed) => ({ mode, idt, seed }))));
    await twoAtATime(runs, async ({ mode, idt, seed }) => {
      const what = `mode ${mode}, IDT ${idt}, seed ${seed}`;
      const code = randomBytes(seed * 0x9e3779b1 + mode * 2 + idt, RANDOM_LENGTH);
      const kernel = guest('random-code', { MODE: mode, IDT: idt, CODE_LEN: RANDOM_LENGTH }, code);
      const r = await tsvmm(accel, ['--kernel', kernel, '--flat', RANDOM_FLAT[mode], '--timeout', '1']);
      const ending = assertEndedWithReason(r, what);
      seen.set(ending, (seen.get(ending) ?? 0) + 1);
      await assertRssBounded(accel, r, what);
    });
    t.diagnostic(`endings: ${[...seen].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  });

  test(`hostile: a hot loop that overwrites its own code ends by its own debug-exit write (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    const r = await tsvmm(accel, ['--kernel', guest('smc-loop'), '--flat', FLAT[64], '--timeout', String(SAFETY_TIMEOUT_S)]);
    assertDebugExit(r, 0x2a, 'self-modifying loop');
    await assertRssBounded(accel, r, 'self-modifying loop');
  });

  test(`hostile: code started at every byte of a few pages: what the CPU keeps decoded is bounded (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    // Each page is some 55 MiB of decoded instructions, kept for good before the soft CPU's cache
    // was bounded (about 100 MiB at most now). The engine's heap is capped: 6 pages must fit in
    // it with room for the collector, where before they ran it out (TSVMM_INTERNAL, status 70).
    const r = await tsvmm(accel, ['--kernel', guest('code-spray', { PAGES: 6 }), '--flat', FLAT[64], '--timeout', String(SAFETY_TIMEOUT_S)], undefined, ['--max-old-space-size=256']);
    assertDebugExit(r, 0x2a, 'code spray');
    assert.equal(r.stdout.toString('latin1'), 'sprayed\n');
  });

  test(`hostile: random bytes sprayed over a few pages again and again, each time jumped into: each run ends with a reason, RSS bounded (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    await baselineKiB(accel);
    const seen = new Map<string, number>();
    await twoAtATime(SPRAY_SEEDS, async (seed) => {
      const what = `seed ${seed}`;
      const kernel = guest('random-spray', { PAGES: 4, ROUNDS: SPRAY_ROUNDS, RAM_TOP, SEED: seed * 2654435761 + 12345 });
      const r = await tsvmm(accel, ['--kernel', kernel, '--flat', FLAT[64], '--timeout', '1']);
      const ending = assertEndedWithReason(r, what);
      seen.set(ending, (seen.get(ending) ?? 0) + 1);
      await assertRssBounded(accel, r, what);
    });
    t.diagnostic(`endings: ${[...seen].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  });

  test(`hostile: a guest flooding COM1: --timeout still ends it, the bytes arrive in order, RSS bounded (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    const r = await tsvmm(accel, ['--kernel', guest('serial-flood'), '--timeout', '2']);
    assertNoCrash(r, 'serial flood');
    assert.equal(r.status, 4, r.stderr);
    assert.match(r.stderr, /^\ntsvmm: TSVMM_TIMEOUT: timed out at RIP 0x/);
    assert.ok(r.stdout.length > 0, 'the output came through');
    const gap = r.stdout.findIndex((b, i) => b !== (i & 0xff));
    assert.equal(gap, -1, `byte ${gap} of ${r.stdout.length} is out of sequence`);
    await assertRssBounded(accel, r, 'serial flood');
  });

  const deviceJunk = async (accel: Accel, [end, status, lines]: [number, number, string[]]): Promise<void> => {
    const r = await tsvmm(accel, ['--kernel', guest('device-junk', { END: end }), '--flat', FLAT[32], '--timeout', String(SAFETY_TIMEOUT_S)]);
    assertNoCrash(r, `END ${end}`);
    assert.equal(r.status, status, `END ${end}: ${r.stderr}`);
    assert.deepEqual(reasonLines(r.stderr), lines, `END ${end}`);
    if (end === 0) assert.ok(r.stdout.toString('latin1').endsWith('devices survived\n'));
    await assertRssBounded(accel, r, `END ${end}`);
  };

  test(`hostile: devices programmed with nonsense (i8042, ACPI PM and reset, 8259s, 8254, CMOS, UART): the machine survives and ends by its debug-exit write (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    await baselineKiB(accel);
    await deviceJunk(accel, [0, 0x55, ['tsvmm: the guest wrote 0x2a to the debug-exit port (status 85)']]);
  });

  test(`hostile: after devices programmed with nonsense, each other way of ending still works: i8042 pulse and output port, reset register, ACPI S5, S3 refused (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    const endings: [number, number, string[]][] = [
      [1, 0, []], // i8042 pulse: reset
      [2, 0, []], // i8042 output port: reset
      [3, 0, []], // reset register: reset
      [4, 0, []], // ACPI S5: power-off
      [5, 1, ['tsvmm: TSVMM_GUEST: ACPI sleep type 3 is not supported']],
    ];
    await baselineKiB(accel);
    await twoAtATime(endings, (ending) => deviceJunk(accel, ending));
  });

  test(`hostile: a guest driving a virtio disk's queue by hand with malformed chains: each refused as the spec says, the image untouched, the device usable after a reset (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    // guests/hostile/virtio-chains.asm prints one line per case: the used index (did the device
    // complete the request), the request's status byte (FF: never written) and the device
    // status (0x40 is DEVICE_NEEDS_RESET). A malformed ring or chain must leave the ring alone
    // and ask for a reset (§2.1.2); a well-formed request the device cannot carry out completes
    // with IOERR or UNSUPP (§5.2.6.2).
    const image = join(scratch ??= mkdtempSync(join(tmpdir(), 'tsvmm-hostile-')), `${images++}-chains.img`);
    const sectors = new Uint8Array(8 * 512);
    for (let n = 0; n < 8; n++) sectors.fill(0xa0 + n, n * 512, (n + 1) * 512);
    writeFileSync(image, sectors);
    const r = await tsvmm(accel, ['--kernel', guest('virtio-chains'), '--flat', FLAT[32], '--drive', `file=${image}`, '--timeout', String(SAFETY_TIMEOUT_S)]);
    assertNoCrash(r, 'virtio chains');
    assert.equal(r.status, 0x55, r.stderr);
    const live = 'dev=0F';
    const reset = 'used=00 req=FF dev=4F';
    assert.deepEqual(r.stdout.toString('latin1').split('\n'), [
      `good used=01 req=00 ${live} data=A3`,
      `loop ${reset}`,
      `head-out-of-table ${reset}`,
      `buffer-outside-ram ${reset}`,
      `length-past-2^64 ${reset}`,
      `readable-after-writable ${reset}`,
      `read-into-readable used=01 req=01 ${live}`, // IOERR
      `no-status-byte ${reset}`,
      `unknown-type used=01 req=02 ${live}`, // UNSUPP
      `past-capacity used=01 req=01 ${live}`, // IOERR
      `indirect-not-negotiated ${reset}`,
      `avail-index-ahead ${reset}`,
      `queue-size-6 ${reset}`,
      'ready-before-features-ok used=00 req=FF dev=03', // no FEATURES_OK: the queue stays off
      'queue-ready=00',
      `good-after-reset used=01 req=00 ${live} data=A5`,
      'virtio chains done',
      '',
    ]);
    // Each refusal is said once per kind, then counted: a few lines, never one per request.
    const notes = r.stderr.split('\n').filter((l) => l.startsWith('tsvmm: virtio-blk0: '));
    assert.ok(notes.length > 0 && notes.length <= 16, `${notes.length} notes:\n${r.stderr}`);
    assert.deepEqual(readFileSync(image), Buffer.from(sectors), 'the image is unchanged');
  });

  test(`hostile: a guest driving a network card's transmit queue by hand: broken chains ask for a reset, bad frames are dropped and counted, the card works after a reset (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    if (!hasTool('passt')) return t.skip('passt is not installed (Debian package passt)');
    // guests/hostile/virtio-net-chains.asm: one line per case (the used index, the device
    // status), and the device's counters at the machine's end say which frames went out.
    const vm = await VirtualMachine.create({
      kernel: guest('virtio-net-chains'), flat: { loadAddr: 0x100000, mode: 'protected32' }, memory: RAM_TOP, accel,
      nics: [{ kind: 'user' }], timeoutMs: SAFETY_TIMEOUT_S * 1000,
    });
    let out = '';
    vm.console.on('data', (b: Buffer) => (out += b.toString('latin1')));
    vm.start();
    const exited = await vm.exited;
    assert.deepEqual(exited.end, { how: 'debug-exit', status: 0x55 }, out);
    const reset = 'used=00 dev=4F';
    const returned = 'used=01 dev=0F';
    assert.deepEqual(out.split('\n'), [
      `good ${returned}`,
      `writable-buffer ${reset}`,
      `loop ${reset}`,
      `buffer-outside-ram ${reset}`,
      `shorter-than-ethernet ${returned}`,
      `csum-not-negotiated ${returned}`,
      `gso-not-negotiated ${returned}`,
      `oversize ${returned}`,
      `good-after-reset ${returned}`,
      'virtio-net chains done',
      '',
    ]);
    const device = exited.nics[0]?.device;
    assert.ok(device, 'the card ran');
    assert.equal(device.txFrames, 2, 'the two good frames went out');
    assert.equal(device.txErrors, 3, 'too short, checksum and GSO asked for');
    assert.equal(device.txOversize, 1);
    assert.equal(exited.nics[0]!.host.toHost, 2, 'passt got the two good frames and nothing else');
  });

  test(`hostile: an interrupt storm (PIT count 1 in the rate generator, nothing masked): the host stays responsive, --timeout ends it, RSS bounded (${accel})`, async (t) => {
    if (!ready(t, accel)) return;
    const r = await tsvmm(accel, ['--kernel', guest('irq-storm'), '--flat', FLAT[32], '--timeout', '2']);
    assertNoCrash(r, 'interrupt storm');
    assert.equal(r.status, 4, r.stderr);
    assert.deepEqual(reasonLines(r.stderr).map((l) => l.replace(/ at RIP .*/, '')), ['tsvmm: TSVMM_TIMEOUT: timed out']);
    assert.match(r.stdout.toString('latin1'), /^\.*$/);
    await assertRssBounded(accel, r, 'interrupt storm');
  });
}
