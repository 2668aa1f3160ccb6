/** Assembling the repository's guest sources with nasm (tests, selftest, demos built from source). */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TsvmmError } from './errors.js';

/** The repository's guests/ folder (this file runs from dist/src/common/). */
export const GUESTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'guests');

export function hasNasm(): boolean {
  return spawnSync('nasm', ['-v'], { stdio: 'ignore' }).status === 0;
}

/**
 * Assembles `source` (a path, or one relative to guests/) as a flat binary and returns its bytes.
 * `defines` become nasm -D options; includes resolve from the source's own folder.
 */
export function assemble(source: string, opts: { defines?: Record<string, string | number> } = {}): Uint8Array {
  if (!hasNasm()) throw new TsvmmError('TSVMM_TOOL_MISSING', `nasm is needed to assemble ${source} (apt-get install nasm)`);
  const path = source.startsWith('/') ? source : join(GUESTS_DIR, source);
  const dir = mkdtempSync(join(tmpdir(), 'tsvmm-nasm-'));
  try {
    const out = join(dir, 'out.bin');
    try {
      const defines = Object.entries(opts.defines ?? {}).map(([name, value]) => `-D${name}=${value}`);
      execFileSync('nasm', ['-f', 'bin', '-I', `${dirname(path)}/`, ...defines, '-o', out, path], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      const stderr = (e as { stderr?: Buffer }).stderr?.toString() ?? String(e);
      throw new TsvmmError('TSVMM_BAD_KERNEL', `nasm failed on ${path}: ${stderr.trim()}`);
    }
    return new Uint8Array(readFileSync(out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A case table as the suite sources lay it out: count, then (offset, length, marker) per case. */
export interface AssembledCase {
  code: Uint8Array;
  /** Offset of the case's marker label from its start, or 0. */
  marker: number;
}

export function readCaseTable(image: Uint8Array): AssembledCase[] {
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const n = dv.getUint32(0, true);
  return Array.from({ length: n }, (_, i) => {
    const off = dv.getUint32(4 + 12 * i, true);
    const len = dv.getUint32(8 + 12 * i, true);
    return { code: image.slice(off, off + len), marker: dv.getUint32(12 + 12 * i, true) };
  });
}
