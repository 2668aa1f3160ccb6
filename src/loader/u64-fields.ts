/**
 * The u64 fields of images and boot data (ELF headers, the Linux setup header, boot_params,
 * multiboot and PVH start info), read and written as numbers: a value at or beyond 2^53 cannot be
 * an address or size in guest memory, so reading one is a malformed image.
 */
import { TsvmmError } from '../common/errors.js';

/** Reads a little-endian u64 as a number; values that do not fit in 2^53 are a malformed image. */
export function readU64(dv: DataView, offset: number, what: string): number {
  const v = dv.getBigUint64(offset, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new TsvmmError('TSVMM_BAD_KERNEL', `${what} 0x${v.toString(16)} is beyond 2^53`);
  }
  return Number(v);
}

/** Writes a number (a safe integer) as a little-endian u64. */
export function writeU64(dv: DataView, offset: number, value: number): void {
  dv.setBigUint64(offset, BigInt(value), true);
}
