// The soft CPU's sampling profiler (--trace profile): the hot loop of a guest on top, samples in the
// phase of the code that ran it (WebAssembly, JS or the interpreter), phase times that add up to
// the time sampled, symbol maps (System.map, kallsyms) resolving RIPs, and the CLI around it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { JitKind } from '../../src/backends/soft/exec.js';
import {
  PHASES, PH_COMPILE, PH_EXIT, PH_INTERP, PH_JS, PH_WASM, SoftProfiler, type SoftProfile,
} from '../../src/backends/soft/profile.js';
import { SoftBackend, type SoftMachine } from '../../src/backends/soft/soft-backend.js';
import { GPR, STATE } from '../../src/nvmm/state.js';
import { enterFlat32 } from '../../src/selftest/guest-x64.js';
import { formatProfile, parseSymbolMap, resolveSymbol } from '../../src/vmm/profile.js';
import { stepOverIo, withMachine, withRamMachine } from '../helpers/machine.js';
import { guestImage, needsNasm } from '../helpers/nasm.js';
import { TSVMM_BIN, withTempDirAsync } from '../helpers/tools.js';

const LOAD = 0x100000;
const RAM = 8 << 20;
/**
 * Samples the tests wait for (at 2000 Hz: ~0.75 s, against the compiler's warm-up, the first region
 * and its module taking a few tens of ms, and several times that on a loaded host: at 600 samples
 * the hot loop once had only 181 of them), the fewest hot-loop rounds and the most they run.
 */
const WANT_SAMPLES = 1500;
const MIN_ROUNDS = 4;
const MAX_ROUNDS = 5000;
/** Blocks are compiled after this many runs (not the default 3000: the warm-up stays short). */
const JIT_THRESHOLD = 10;

interface LoopRun {
  profile: SoftProfile;
  hot: bigint;
  wallNs: number;
}

/** Runs guests/soft/profile-loop.asm under a profiler until it has WANT_SAMPLES samples. */
function profileLoop(kind: JitKind | 'interpreter', opts: { delayMs?: number; gate?: SharedArrayBuffer; rounds?: number } = {}): LoopRun {
  const jit = { kind: kind === 'interpreter' ? 'wasm' : kind, threshold: kind === 'interpreter' ? -1 : JIT_THRESHOLD } as const;
  const profiler = new SoftProfiler({ hz: 2000, delayMs: opts.delayMs, gate: opts.gate });
  const rounds = opts.rounds;
  const backend = SoftBackend.open({ profile: profiler, jit });
  const t0 = process.hrtime.bigint();
  return withRamMachine(backend, RAM, ({ vcpu, ram }) => {
    ram.set(guestImage('soft/profile-loop.asm'), LOAD);
    assert.ok(profiler.attached);
    enterFlat32(vcpu, LOAD);
    vcpu.setState(STATE.ALL);
    let hot = -1n;
    for (let round = 0; rounds !== undefined ? round < rounds : round < MAX_ROUNDS && (profiler.samples < WANT_SAMPLES || round < MIN_ROUNDS);) {
      const exit = vcpu.run();
      if (exit.kind === 'none') continue;
      assert.equal(exit.kind, 'io', `the guest only leaves with OUT (got ${exit.kind})`);
      const gprs = stepOverIo(vcpu, exit);
      if (exit.port === 0xe0) hot = gprs[GPR.RAX]! & 0xffffffffn;
      else round++;
    }
    const profile = profiler.stop();
    return { profile, hot, wallNs: Number(process.hrtime.bigint() - t0) };
  });
}

const sum = (xs: number[]) => xs.reduce((a, x) => a + x, 0);

function checkLoop(r: LoopRun, codePhase: number): void {
  const p = r.profile;
  assert.ok(p.samples >= WANT_SAMPLES, `${p.samples} samples`);
  assert.equal(p.dropped, 0);
  assert.equal(sum(p.phaseSamples), p.samples, 'every sample is in the RIP table, under one phase');
  assert.equal(p.phaseSamples.length, PHASES);
  // Each sample weighs the time since the previous one: the phases add up to the span sampled,
  // which lies inside the wall-clock time of the run.
  assert.ok(Math.abs(sum(p.phaseNs) - p.spanNs) <= 1e-6 * p.spanNs, `phases ${sum(p.phaseNs)} ns, span ${p.spanNs} ns`);
  assert.ok(p.spanNs > 0 && p.spanNs <= r.wallNs, `span ${p.spanNs} ns within the run's ${r.wallNs} ns`);
  const rows = p.rips.map((x) => ({ rip: x.rip, n: sum(x.samples), samples: x.samples })).sort((a, b) => b.n - a.n);
  assert.equal(rows[0]!.rip, r.hot, `top RIP 0x${rows[0]!.rip.toString(16)}, hot loop at 0x${r.hot.toString(16)}`);
  assert.ok(rows[0]!.n > p.samples / 2, `the hot loop has ${rows[0]!.n} of ${p.samples} samples`);
  const top = rows[0]!.samples;
  assert.equal(top.indexOf(Math.max(...top)), codePhase, `the hot loop's samples by phase: ${top.join(' ')}`);
  // The counters between the first and the last sample: (nearly) all interpreted without a
  // compiler; the executor's interpreted count leaves out the instructions of a block before an exit.
  const what = `${p.instructions} instructions, ${p.interpreted} interpreted`;
  assert.ok(p.instructions > 0 && p.interpreted >= 0 && p.interpreted <= p.instructions, what);
  assert.ok(codePhase === PH_INTERP ? p.interpreted > 0.99 * p.instructions : p.interpreted < p.instructions / 2, what);
}

test('profile: the hot loop of a guest is on top, in compiled WebAssembly', needsNasm, () => {
  const r = profileLoop('wasm');
  checkLoop(r, PH_WASM);
  assert.ok(r.profile.phaseSamples[PH_EXIT]! >= 0 && r.profile.phaseSamples[PH_COMPILE]! >= 0);
  const text = formatProfile(r.profile);
  assert.match(text, /^profile: \d+ samples at 2000 Hz over \d+\.\d{3} s/);
  assert.match(text, /^ {2}compiled wasm +\d+\.\d{3} +\d+\.\d$/m);
  assert.match(text, /^instructions: \d+ \(\d+\.\d MIPS over the time sampled\), \d+\.\d % of them interpreted$/m);
  // The first row under the header is the hot loop.
  const rows = text.split('\n');
  const header = rows.findIndex((l) => /^ +% +samples +interp/.test(l));
  assert.match(rows[header + 1]!, new RegExp(`  0x${r.hot.toString(16)}$`));
});

test('profile: in compiled JS and in the interpreter, the hot loop is on top in that phase', needsNasm, () => {
  checkLoop(profileLoop('js'), PH_JS);
  checkLoop(profileLoop('interpreter'), PH_INTERP);
});

test('profile: nothing is sampled before the delay, and stop() ends the wait', needsNasm, () => {
  const r = profileLoop('wasm', { delayMs: 1e9, rounds: 3 });
  assert.equal(r.profile.samples, 0);
  assert.equal(r.profile.spanNs, 0);
  assert.equal(r.profile.delayMs, 1e9);
  assert.deepEqual(r.profile.rips, []);
});

test('profile: nothing is sampled while the gate is closed', needsNasm, () => {
  const r = profileLoop('wasm', { gate: new SharedArrayBuffer(4), rounds: 4 });
  assert.equal(r.profile.samples, 0);
  assert.deepEqual(r.profile.rips, []);
});

test('profile: a symbol map names the function of each RIP', needsNasm, () => {
  const r = profileLoop('wasm');
  const h = (v: bigint) => v.toString(16).padStart(16, '0');
  const map = parseSymbolMap([
    `${h(0x100000n)} T start32`,
    `${h(0x100000n)} D some_data`, // not code: ignored
    `${h(r.hot)} t hot_loop`,
    `${h(r.hot + 0x40n)} t after_hot`,
  ].join('\n'));
  const text = formatProfile(r.profile, { symbols: map, top: 3 });
  const rows = text.split('\n');
  const header = rows.findIndex((l) => /^ +% +samples +interp.*function$/.test(l));
  assert.ok(header > 0, text);
  assert.match(rows[header + 1]!, / hot_loop$/);
});

test('symbol maps: System.map, kallsyms with modules and nm lines; the nearest code symbol below', () => {
  const map = parseSymbolMap([
    'ffffffff81000000 T _stext',
    'ffffffff81000000 T startup_64',
    'ffffffff81001000 t helper',
    'ffffffff81002000 D a_variable',
    'ffffffff81003000 W weak_function',
    'ffffffffc0000000 t vfat_lookup\t[vfat]',
    '0000000000000000 T hidden_by_kptr_restrict',
    'garbage line',
    '0000000000401000 T main',
  ].join('\n'));
  assert.equal(map.names.length, 6);
  assert.equal(resolveSymbol(map, 0xffffffff81000010n)?.name, 'startup_64');
  assert.deepEqual(resolveSymbol(map, 0xffffffff81002800n), { name: 'helper', offset: 0x1800n });
  assert.equal(resolveSymbol(map, 0xffffffff81003004n)?.name, 'weak_function');
  assert.equal(resolveSymbol(map, 0xffffffffc0000123n)?.name, 'vfat_lookup [vfat]');
  assert.equal(resolveSymbol(map, 0xffffffffc0100000n), undefined, 'past the last symbol by more than 64 KiB');
  assert.equal(resolveSymbol(map, 0x401234n)?.name, 'main');
  assert.equal(resolveSymbol(map, 0x1000n), undefined);
  assert.throws(() => parseSymbolMap('ffffffff81002000 D only_data\n'), { code: 'TSVMM_BAD_ARGUMENT' });
});

test('without a profiler the executor stores nothing and the CPU keeps its class methods', () => {
  withMachine(SoftBackend.open(), (machine) => {
    machine.createVcpu(0);
    const [v] = (machine as unknown as { impl: SoftMachine }).impl.vcpuList();
    assert.equal(v!.exec.prof, null);
    assert.equal(Object.hasOwn(v!.cpu, 'fill'), false);
  });
});

test('tsvmm run --trace profile prints the phases and the top RIPs at the end (soft)', needsNasm, async () => {
  await withTempDirAsync(async (dir) => {
    const map = join(dir, 'System.map');
    writeFileSync(map, '0000000000100000 T hello_guest\n');
    const stderr = await helloProfile(`profile=500,symbols=${map},top=5`);
    assert.match(stderr, /^profile: \d+ samples at 500 Hz over \d+\.\d{3} s/m);
    assert.match(stderr, /^phase +seconds +%$/m);
    assert.match(stderr, /^top \d+ functions; each one's samples by phase, in %:$/m);
  });
});

/**
 * tsvmm run of the hello guest with `--trace trace`: types 'r' (a reset ends it) at its prompt, or
 * `typeAfterMs` after it; the run must succeed. Resolves with its stderr.
 */
async function helloProfile(trace: string, typeAfterMs?: number): Promise<string> {
  let stderr = '';
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, 'hello.elf');
    writeFileSync(kernel, guestImage('board/hello.asm'));
    const child = spawn(process.execPath, [TSVMM_BIN, 'run', '--kernel', kernel, '--accel', 'soft', '-m', '64', '--trace', trace]);
    let stdout = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString('latin1');
      if (!stdout.endsWith('echo> ')) return;
      if (typeAfterMs === undefined) child.stdin.write('r');
      else setTimeout(() => child.stdin.write('r'), typeAfterMs);
    });
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const status = await new Promise((resolve) => child.on('close', resolve));
    assert.equal(status, 0, stderr);
  });
  return stderr;
}

test('tsvmm run --trace profile,from=TEXT samples once the console has printed TEXT (soft)', needsNasm, async () => {
  assert.match(await helloProfile('profile,from=no guest prints this', 0), /^profile: 0 samples/m);
  // The prompt opens the window: the guest then waits for input, halted.
  const opened = await helloProfile('profile,from=echo> ', 500);
  const samples = Number(/^profile: (\d+) samples/m.exec(opened)?.[1]);
  assert.ok(samples > 0, opened);
  assert.match(opened, /^ {2}halted +\d/m);
  assert.match(await helloProfile('profile,to=hello from', 0), /^profile: \d+ samples/m);
});

test('tsvmm run: --trace profile options are checked', async () => {
  const { spawnSync } = await import('node:child_process');
  const cases: [string, RegExp][] = [
    ['profile=0', /TSVMM_USAGE: --trace profile=0 is too small: at least 1 sample a second/],
    ['profile=20001', /TSVMM_USAGE: --trace profile=20001 is too large: at most 20000 samples a second/],
    ['profile,delay=1000001', /TSVMM_USAGE: --trace delay=1000001 is too large: at most 1000000000 ms \(1000000 seconds\)/],
    ['profile,top=x', /TSVMM_USAGE: bad --trace top=x/],
    ['profile,symbols=/nonexistent/System.map', /TSVMM_USAGE: --trace symbols=\/nonexistent\/System.map: ENOENT/],
    ['profile,everything', /TSVMM_USAGE: unknown --trace 'everything'/],
    ['profile,delay=soon', /TSVMM_USAGE: bad --trace delay=soon \(seconds\)/],
  ];
  for (const [trace, re] of cases) {
    const r = spawnSync(process.execPath, [TSVMM_BIN, 'run', '--kernel', '/nonexistent', '--trace', trace], { encoding: 'utf8' });
    assert.match(r.stderr, re, trace);
    assert.notEqual(r.status, 0);
  }
});
