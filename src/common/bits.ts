/**
 * Number helpers every layer uses. 64-bit values travel as a number below 2^53 or as two uint32
 * halves, so 2^32 is the constant that joins and splits them; guest addresses and sizes are
 * aligned to powers of two and printed in hex in messages.
 */

/** 2^32: `lo + hi * TWO32` joins two uint32 halves, `n % TWO32` and `Math.floor(n / TWO32)` split them. */
export const TWO32 = 4294967296;

/** `0x` and the lowercase hex digits of `n` (no padding): the form messages name addresses and values in. */
export function hex(n: number | bigint): string {
  return `0x${n.toString(16)}`;
}

/** `n` rounded up to a multiple of `align`. */
export function alignUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

/** `n` rounded down to a multiple of `align`. */
export function alignDown(n: number, align: number): number {
  return Math.floor(n / align) * align;
}

/** A DataView of exactly the bytes of `bytes` (x86 data is little-endian: pass `true` to its getters and setters). */
export function leView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
