/**
 * nasm in the tests: the option that skips a test where nasm is missing, and guests assembled once
 * per process (several tests of a file build the same guest, and nasm is a process of its own),
 * from the repository's sources or from text a test generates.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { assemble, hasNasm } from '../../src/common/nasm.js';
import { withTempDir } from './tools.js';

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
