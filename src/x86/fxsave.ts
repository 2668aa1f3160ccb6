/**
 * The FXSAVE area (512 bytes; also the legacy region of XSAVE): Intel SDM vol. 1, 10.5.1,
 * table 10-2. Byte offsets of each field.
 */
export const FXSAVE = {
  size: 512,
  fcw: 0,
  fsw: 2,
  /** Abridged tag word: one bit per register, 1 = valid. */
  ftw: 4,
  fop: 6,
  /** FPU instruction pointer (64-bit format). */
  fip: 8,
  /** FPU data pointer (64-bit format). */
  fdp: 16,
  mxcsr: 24,
  mxcsrMask: 28,
  /** ST0-ST7 / MM0-MM7, 16 bytes each. */
  st: 32,
  /** XMM0-XMM15, 16 bytes each. */
  xmm: 160,
} as const;

/** XSAVE header (follows the legacy region): XSTATE_BV, the components present in the image. */
export const XSAVE_HEADER_XSTATE_BV = 512;
export const XSTATE_X87 = 1 << 0;
export const XSTATE_SSE = 1 << 1;
