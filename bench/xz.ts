/**
 * bench/xz: inflating Debian's bzImage payload (what every uncached `--pvh` boot does) with
 * tsvmm's decoder (src/loader/xz.ts), with the xz packages of the npm registry that are installed
 * next to it, and from tsvmm's kernel cache (a second boot), each in a fresh process, against
 * `xz -dc` measured in the same run. Prints the best of RUNS wall times, the CPU time of that run,
 * the peak RSS, and the ratios to xz; every output is checked against xz's.
 *
 * The packages are not dependencies of tsvmm; to measure them: `npm install --no-save
 * @napi-rs/lzma lzma-native node-liblzma` (then `npm ci` to go back). Each is called the
 * fastest way it offers; which of them can also bound its output (a decompression bomb) is noted.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseBzImage } from '../src/loader/bzimage.js';
import { findGuestKernel } from '../src/loader/guest-kernels.js';
import { KernelCache } from '../src/loader/kernel-cache.js';
import { vmlinuxFromBzImage } from '../src/loader/vmlinux.js';

const RUNS = 3;
const GNU_TIME = '/usr/bin/time';

interface Sample {
  wallMs: number;
  /** User + system CPU of the process that decoded. */
  cpuMs: number | undefined;
  /** Peak resident memory of that process. */
  rssMiB: number | undefined;
  sha256: string;
  error?: string;
}

interface Candidate {
  name: string;
  /** How it bounds its output, or why it cannot. */
  bound: string;
  /** A module to import in the child (file URL), or undefined for tsvmm's own. */
  module?: string;
  /** The body of an async function of (lib, payload, stream, declared, paths) returning the output. */
  body: string;
}

const src = (path: string): string => new URL(`../src/${path}`, import.meta.url).href;

/** Resolves an installed package from here, or undefined. */
function resolvePackage(name: string): string | undefined {
  try {
    return import.meta.resolve(name);
  } catch {
    return undefined;
  }
}

const CANDIDATES: readonly Candidate[] = [
  {
    name: 'tsvmm src/loader/xz.ts',
    bound: 'maxBytes: stops as soon as the output would pass it',
    module: src('loader/xz.js'),
    body: 'return lib.xzDecompress(payload, { maxBytes: declared, sizeHint: declared });',
  },
  {
    name: 'tsvmm kernel cache hit',
    bound: 'the entry is checked against the declared size and its sha256',
    module: src('loader/vmlinux.js'),
    body: `const { KernelCache } = await import(${JSON.stringify(src('loader/kernel-cache.js'))});
      const cache = new KernelCache(paths.cache);
      const out = lib.vmlinuxFromBzImage(paths.image, declared, { cache });
      if (cache.stats.hits !== 1) throw new Error('not a cache hit');
      return out;`,
  },
  {
    name: '@napi-rs/lzma xz.decompressSync',
    bound: 'none (one buffer of any size); only its async stream API could be bounded',
    module: resolvePackage('@napi-rs/lzma'),
    body: 'return (lib.default ?? lib).xz.decompressSync(stream);',
  },
  {
    name: 'lzma-native stream (synchronous)',
    bound: 'a counter on its stream',
    module: resolvePackage('lzma-native'),
    body: `return await new Promise((resolve, reject) => {
        const d = (lib.default ?? lib).createDecompressor({ synchronous: true });
        const parts = [];
        d.on('data', (c) => parts.push(c)).on('end', () => resolve(Buffer.concat(parts))).on('error', reject);
        d.end(Buffer.from(stream));
      });`,
  },
  {
    name: 'node-liblzma unxzSync',
    bound: 'a counter on its stream',
    module: resolvePackage('node-liblzma'),
    body: 'return (lib.default ?? lib).unxzSync(Buffer.from(stream));',
  },
];

/** Decodes once in a fresh node process; the child reports its own times and memory. */
function runChild(c: Candidate, paths: Record<string, string>): Sample {
  const script = `
    import { readFileSync } from 'node:fs';
    import { createHash } from 'node:crypto';
    const [module, pathsJson] = process.argv.slice(1);
    const paths = JSON.parse(pathsJson);
    const lib = await import(module);
    const payload = new Uint8Array(readFileSync(paths.payload));
    const stream = payload.subarray(0, payload.length - 4);
    const declared = new DataView(payload.buffer).getUint32(payload.length - 4, true);
    paths.image = new Uint8Array(readFileSync(paths.bzImage));
    const decode = async () => { ${c.body} };
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let out, error;
    try { out = await decode(); } catch (e) { error = String(e).slice(0, 120); }
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const sha256 = out ? createHash('sha256').update(out).digest('hex') : '';
    process.stdout.write(JSON.stringify({ wallMs, cpuMs: (cpu.user + cpu.system) / 1000, rssMiB: process.resourceUsage().maxRSS / 1024, sha256, error }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, c.module!, JSON.stringify(paths)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) return { wallMs: NaN, cpuMs: undefined, rssMiB: undefined, sha256: '', error: r.stderr.trim().split('\n').at(-1) };
  return JSON.parse(r.stdout) as Sample;
}

/** `xz -dc --single-stream` (the bzImage appends its size after the stream), under GNU time when there is one. */
function runXz(streamFile: string, outFile: string): Sample {
  const timed = existsSync(GNU_TIME);
  const args = ['-dc', '--single-stream', streamFile];
  const t0 = performance.now();
  const r = timed
    ? spawnSync('sh', ['-c', `${GNU_TIME} -f '%U %S %M' xz "$@" > '${outFile}'`, 'sh', ...args], { encoding: 'utf8' })
    : spawnSync('sh', ['-c', `xz "$@" > '${outFile}'`, 'sh', ...args], { encoding: 'utf8' });
  const wallMs = performance.now() - t0;
  if (r.status !== 0) throw new Error(`xz -dc failed: ${r.stderr}`);
  const sha256 = createHash('sha256').update(readFileSync(outFile)).digest('hex');
  if (!timed) return { wallMs, cpuMs: undefined, rssMiB: undefined, sha256 };
  const [user, sys, rssKiB] = r.stderr.trim().split('\n').at(-1)!.split(' ').map(Number) as [number, number, number];
  return { wallMs, cpuMs: (user + sys) * 1000, rssMiB: rssKiB / 1024, sha256 };
}

/** The run with the least wall time, with the highest peak RSS of all runs. */
function best(samples: Sample[]): Sample {
  const ok = samples.filter((s) => !s.error);
  if (ok.length === 0) return samples[0]!;
  const b = ok.reduce((a, s) => (s.wallMs < a.wallMs ? s : a));
  return { ...b, rssMiB: Math.max(...ok.map((s) => s.rssMiB ?? 0)) || undefined };
}

export async function run(): Promise<void> {
  const kernel = findGuestKernel();
  if (!kernel) {
    process.stdout.write('xz: skipped: no cached kernel (scripts/fetch-guest-kernel.sh)\n');
    return;
  }
  const hasXz = spawnSync('xz', ['--version']).status === 0;
  if (!hasXz) {
    process.stdout.write('xz: skipped: the xz tool is not installed (apt-get install xz-utils)\n');
    return;
  }
  const image = new Uint8Array(readFileSync(kernel.vmlinuz));
  const { payload } = parseBzImage(image);
  if (!payload) throw new Error(`${kernel.vmlinuz} has no payload`);
  const declared = new DataView(payload.buffer, payload.byteOffset).getUint32(payload.length - 4, true);
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-bench-xz-'));
  try {
    const paths = { payload: join(dir, 'payload'), bzImage: kernel.vmlinuz, cache: join(dir, 'cache') };
    writeFileSync(paths.payload, payload);
    const streamFile = join(dir, 'payload.xz');
    writeFileSync(streamFile, payload.subarray(0, payload.length - 4));
    // Fill the cache, as a first boot does.
    vmlinuxFromBzImage(image, declared, { cache: new KernelCache(paths.cache) });

    const rows: { name: string; bound: string; sample: Sample | undefined }[] = [];
    const xzSamples: Sample[] = [];
    for (let i = 0; i < RUNS; i++) xzSamples.push(runXz(streamFile, join(dir, 'vmlinux')));
    const xz = best(xzSamples);
    for (const c of CANDIDATES) {
      if (!c.module) {
        rows.push({ name: c.name, bound: c.bound, sample: undefined });
        continue;
      }
      const samples: Sample[] = [];
      for (let i = 0; i < RUNS; i++) samples.push(runChild(c, paths));
      rows.push({ name: c.name, bound: c.bound, sample: best(samples) });
    }

    const ms = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '-' : `${Math.round(v)} ms`);
    const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined || Number.isNaN(a) ? '-' : (a / b).toFixed(2));
    const mib = (v: number | undefined) => (v === undefined ? '-' : `${Math.round(v)} MiB`);
    process.stdout.write(`xz: ${kernel.vmlinuz}: ${payload.length} bytes of payload, ${declared} inflated; best of ${RUNS} runs, each in a fresh process\n`);
    process.stdout.write(`${'decoder'.padEnd(36)}${'wall'.padStart(9)}${'cpu'.padStart(9)}${'peak RSS'.padStart(10)}  ratio to xz (wall, cpu)\n`);
    process.stdout.write(`${'xz -dc (reference)'.padEnd(36)}${ms(xz.wallMs).padStart(9)}${ms(xz.cpuMs).padStart(9)}${mib(xz.rssMiB).padStart(10)}\n`);
    for (const { name, bound, sample: s } of rows) {
      if (!s) {
        process.stdout.write(`${name.padEnd(36)}not installed (npm install --no-save to measure)\n`);
        continue;
      }
      const verdict = s.error ? `failed: ${s.error}` : s.sha256 === xz.sha256 ? `${ratio(s.wallMs, xz.wallMs)}, ${ratio(s.cpuMs, xz.cpuMs)}` : 'WRONG OUTPUT';
      process.stdout.write(`${name.padEnd(36)}${ms(s.wallMs).padStart(9)}${ms(s.cpuMs).padStart(9)}${mib(s.rssMiB).padStart(10)}  ${verdict}\n`);
      process.stdout.write(`${''.padEnd(38)}output bound: ${bound}\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
