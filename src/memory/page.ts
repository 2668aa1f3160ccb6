/**
 * The page: 4 KiB, the x86 base page (larger pages are multiples of it) and the Linux/x86-64
 * host's mapping granularity, so the unit of host memory and of every guest mapping. It lives in
 * memory/, the lowest layer that needs it, so that memory/ and everything above share one figure.
 */
export const PAGE_SIZE = 4096;
