/**
 * nasm in the tests: the option that skips a test where nasm is missing, and guests assembled once
 * per process (several tests of a file build the same guest, and nasm is a process of its own),
 * from the repository's sources or from text a test generates; and ELF guests linked with ld, with
 * their symbols, for a debugger (or, where ld is missing, the same ELF linked beforehand and put
 * in the guest cache: the nested-KVM run's outer guest has nasm but no binutils).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { GUESTS_DIR, assemble, hasNasm } from '../../src/common/nasm.js';
import { guestCacheDir } from '../../src/loader/guest-kernels.js';
import type { TestContext } from 'node:test';
import type { Accel } from '../../src/backends/open.js';
import { kvmOrSkip } from './kvm.js';
import { hasTool, withTempDir, withTempDirAsync } from './tools.js';

/** The options of a test that needs nasm: skipped, with the reason, where it is not installed. */
export const needsNasm: { skip: string | false } = { skip: hasNasm() ? false : 'nasm not installed' };

const images = new Map<string, Uint8Array>();

/** The image built once for `key`; each caller gets its own copy (a test may write to it). */
function once(key: string, build: () => Uint8Array): Uint8Array {
  let image = images.get(key);
  if (!image) {
    image = build();
    images.set(key, image);
  }
  return image.slice();
}

/**
 * guests/board/NAME.asm for a test of a machine on `accel`, or undefined with the test skipped
 * and why (no usable KVM for kvm, nasm missing).
 */
export function boardGuestOrSkip(t: TestContext, name: string, accel: Accel = 'soft'): Uint8Array | undefined {
  if (accel === 'kvm' && !kvmOrSkip(t)) return undefined;
  if (!hasNasm()) {
    t.skip('nasm not installed');
    return undefined;
  }
  return guestImage(`board/${name}.asm`);
}

/**
 * Runs `fn` with guests/board/NAME.asm assembled into NAME.bin in a temporary directory (removed
 * afterwards), or skips the test as boardGuestOrSkip does.
 */
export async function withBoardGuest(t: TestContext, name: string, accel: Accel, fn: (kernel: string, dir: string) => Promise<void>): Promise<void> {
  const image = boardGuestOrSkip(t, name, accel);
  if (!image) return;
  await withTempDirAsync(async (dir) => {
    const kernel = join(dir, `${name}.bin`);
    writeFileSync(kernel, image);
    await fn(kernel, dir);
  });
}

/** A guest source (a path, or one relative to guests/) assembled as a flat binary. */
export function guestImage(source: string, defines?: Record<string, string | number>): Uint8Array {
  return once(`${source} ${JSON.stringify(defines ?? {})}`, () => assemble(source, { defines }));
}

/** nasm on generated source text. */
export function assembleText(text: string): Uint8Array {
  return once(`text ${createHash('sha256').update(text).digest('hex')}`, () => withTempDir((dir) => {
    const path = join(dir, 'guest.asm');
    writeFileSync(path, text);
    return assemble(path);
  }));
}

/** A few instructions in `bits`-bit code, as they run where they are put (no org). */
export function assembleSnippet(source: string, bits: 16 | 32 | 64): Uint8Array {
  return assembleText(`bits ${bits}\n${source}\n`);
}

/** An ELF guest with its symbols: the file's bytes and each symbol's address. */
export interface LinkedGuest {
  elf: Uint8Array;
  symbols: Record<string, number>;
}

const linked = new Map<string, LinkedGuest>();

/**
 * Where an ELF guest linked beforehand is looked for when ld is missing, relative to the guest
 * cache: `linked/NAME-HASH.elf` and its symbols in `.json`, HASH over the linker script and the
 * files of the source's directory (the source and what it includes), so only an ELF linked from
 * these very sources is taken. test/kvm-nested/outer-guest.ts puts them there.
 */
export function prebuiltLinkedGuestName(source: string, script: string): string {
  const hash = createHash('sha256');
  const dir = dirname(join(GUESTS_DIR, source));
  for (const name of readdirSync(dir).sort()) hash.update(`${name}\0`).update(readFileSync(join(dir, name)));
  hash.update(`script\0`).update(readFileSync(join(GUESTS_DIR, script)));
  return `linked/${source.replace(/\.asm$/, '').replace(/\//g, '-')}-${hash.digest('hex').slice(0, 16)}`;
}

/** Links with nasm and ld, the symbols read by nm. */
function link(source: string, script: string): LinkedGuest {
  return withTempDir((dir) => {
    const obj = join(dir, 'guest.o'), elf = join(dir, 'guest.elf');
    execFileSync('nasm', ['-f', 'elf64', '-I', `${dirname(join(GUESTS_DIR, source))}/`, '-o', obj, join(GUESTS_DIR, source)]);
    execFileSync('ld', ['-T', join(GUESTS_DIR, script), '-o', elf, obj]);
    const symbols: Record<string, number> = {};
    for (const line of execFileSync('nm', [elf], { encoding: 'utf8' }).split('\n')) {
      const m = /^([0-9a-f]+) [A-Za-z] (\S+)$/.exec(line);
      if (m) symbols[m[2]!] = parseInt(m[1]!, 16);
    }
    return { elf: new Uint8Array(readFileSync(elf)), symbols };
  });
}

const canLink = (): boolean => hasNasm() && hasTool('ld') && hasTool('nm');

/** Why linkedGuest(source, script) cannot give the guest here (no nasm or binutils, nothing linked beforehand), or false. */
export function linkedGuestUnavailable(source: string, script: string): string | false {
  if (canLink() || existsSync(join(guestCacheDir(), `${prebuiltLinkedGuestName(source, script)}.elf`))) return false;
  return hasNasm() ? 'ld (binutils) not installed' : 'nasm not installed';
}

/**
 * A guest source (relative to guests/) assembled with `nasm -f elf64` and linked by `ld` with the
 * linker script `script` (relative to guests/): a kernel a debugger loads symbols from. Where ld
 * is missing, the one linked beforehand from the same sources (prebuiltLinkedGuestName). Built
 * once per process; each caller gets its own copy of the bytes.
 */
export function linkedGuest(source: string, script: string): LinkedGuest {
  let g = linked.get(`${source} ${script}`);
  if (!g) {
    if (canLink()) g = link(source, script);
    else {
      const base = join(guestCacheDir(), prebuiltLinkedGuestName(source, script));
      g = { elf: new Uint8Array(readFileSync(`${base}.elf`)), symbols: JSON.parse(readFileSync(`${base}.json`, 'utf8')) as Record<string, number> };
    }
    linked.set(`${source} ${script}`, g);
  }
  return { elf: g.elf.slice(), symbols: { ...g.symbols } };
}
