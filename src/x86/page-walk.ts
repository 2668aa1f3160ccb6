/**
 * The guest page-table walker (Intel SDM vol. 3A chapter 4, AMD APM vol. 2 chapter 5): linear
 * (guest virtual) address -> guest physical address, with the #PF error code on failure.
 * Pure: guest memory is reached only through the `PhysMemoryAccess` passed in.
 *
 * Address representation
 * - A GVA is passed as two 32-bit halves `(vaLo, vaHi)` on the hot path (software CPU TLB refill,
 *   instruction emulator); signed or unsigned halves both work. Outside long mode only vaLo counts.
 *   `walkGva()` takes a bigint (or a number below 2^53) for the hypervisor API's gvaToGpa.
 * - A GPA is a plain number: guest physical addresses have at most 52 bits, exact in a double.
 * - CR3 is a number (the physical address bits; bit 63 of a MOV-to-CR3 operand is not part of CR3).
 *
 * Modes: paging off (identity on the low 32 bits), 32-bit (4 KiB; 4 MiB with CR4.PSE, PSE-36 high
 * address bits), PAE (4 KiB, 2 MiB; PDPTEs read at walk time), 4-level (4 KiB, 2 MiB, 1 GiB),
 * 5-level (CR4.LA57). Protection keys are not modelled (PK is never reported).
 *
 * Accessed/dirty bits are only written when WALK_SET_AD is given, and only for a walk that
 * succeeds: A in every entry used, D in the leaf on a write.
 */
import { TWO32 } from '../common/bits.js';
import { CR0_PG, CR0_WP, CR4_LA57, CR4_PAE, CR4_PSE, CR4_SMAP, CR4_SMEP, EFER_LMA, EFER_NXE } from './control-regs.js';

// ---------------------------------------------------------------------------------------------
// Paging-structure entry bits (low word), for the walker and for whoever builds page tables.
export const PTE_P = 1 << 0; // present
export const PTE_RW = 1 << 1; // writable
export const PTE_US = 1 << 2; // user accessible
export const PTE_A = 1 << 5; // accessed
export const PTE_D = 1 << 6; // dirty (leaf entries)
export const PTE_PS = 1 << 7; // page size (leaf at PDPTE / PDE level)
export const PTE_G = 1 << 8; // global (leaf entries)
export const PTE_HI_XD = 1 << 31; // execute disable: bit 63, i.e. bit 31 of the high word

const PDE32_PSE36_RSVD_BIT21 = 1 << 21; // 32-bit 4 MiB PDE: bit 21 is always reserved
const PDE_2M_RSVD = 0x001fe000; // bits 20:13 of a 2 MiB PDE
const PDPTE_1G_RSVD = 0x3fffe000; // bits 29:13 of a 1 GiB PDPTE
const PAE_PDPTE_RSVD_LO = 0x000001e6; // PAE PDPTE bits 2:1 and 8:5

// ---------------------------------------------------------------------------------------------
// Inputs and outputs.

/** Guest physical memory as the walker needs it. Entries are little-endian, 4-byte aligned. */
export interface PhysMemoryAccess {
  /** The 32-bit word at `gpa` (signed or unsigned). Unbacked memory should read as all ones. */
  read32(gpa: number): number;
  /** OR `bits` into the 32-bit word at `gpa` (atomically, if other vCPUs share memory). Needed
   *  only with WALK_SET_AD. */
  or32?(gpa: number, bits: number): void;
}

/** The registers that select and control paging. Only the low 32 bits of CR0/CR4/EFER matter. */
export interface PagingState {
  cr0: number;
  cr3: number;
  cr4: number;
  efer: number;
}

// Protection mask of a translation (the values of libnvmm's NVMM_PROT_*).
export const PROT_READ = 0x1; // always set for a present page
export const PROT_WRITE = 0x2; // R/W = 1 at every level
export const PROT_EXEC = 0x4; // no XD at any level (or EFER.NXE = 0)
export const PROT_USER = 0x8; // U/S = 1 at every level
export const PROT_ALL = PROT_READ | PROT_WRITE | PROT_EXEC | PROT_USER;

// Walk flags: the access (same bit positions as the #PF error code) and options.
export const ACCESS_READ = 0; // a data read
export const ACCESS_WRITE = 1 << 1; // a data write
export const ACCESS_USER = 1 << 2; // a user-mode access (CPL 3, not an implicit supervisor access)
export const ACCESS_FETCH = 1 << 4; // an instruction fetch
export const WALK_SET_AD = 1 << 8; // set accessed/dirty bits on success
export const WALK_NO_CHECK = 1 << 9; // translate only: no permission checks (gvaToGpa)
export const WALK_AC = 1 << 10; // RFLAGS.AC = 1 on an explicit supervisor access (SMAP override)
export const WALK_IMPLICIT = 1 << 11; // implicit supervisor access (GDT/IDT/TSS...): SMAP ignores AC

// #PF error code bits (SDM vol. 3A §4.7).
export const PFEC_P = 1 << 0; // 0: not present; 1: protection violation (or reserved bit)
export const PFEC_W = 1 << 1; // the access was a write
export const PFEC_U = 1 << 2; // the access was a user-mode access
export const PFEC_RSVD = 1 << 3; // a reserved bit was set in a paging-structure entry
export const PFEC_ID = 1 << 4; // instruction fetch (only when SMEP, or PAE paging with NXE)
export const PFEC_PK = 1 << 5; // protection key violation (never produced here)

// Outcome of a walk.
export const WALK_OK = 0; // translated
export const WALK_PAGE_FAULT = 1; // #PF: errorCode and fault address (CR2) are set
export const WALK_NON_CANONICAL = 2; // #GP(0) (or #SS(0) for stack accesses): the caller decides

// Paging modes.
export const PAGING_NONE = 0; // CR0.PG = 0
export const PAGING_32 = 1; // 32-bit paging
export const PAGING_PAE = 2; // PAE paging
export const PAGING_4LEVEL = 3; // 4-level paging (IA-32e)
export const PAGING_5LEVEL = 4; // 5-level paging (IA-32e with CR4.LA57)

/** The paging mode selected by CR0.PG, CR4.PAE, EFER.LMA and CR4.LA57. */
export function pagingMode(s: PagingState): number {
  if ((s.cr0 & CR0_PG) === 0) return PAGING_NONE;
  if ((s.cr4 & CR4_PAE) === 0) return PAGING_32;
  if ((s.efer & EFER_LMA) === 0) return PAGING_PAE;
  return (s.cr4 & CR4_LA57) !== 0 ? PAGING_5LEVEL : PAGING_4LEVEL;
}

/** The result of one walk; allocate once and reuse. */
export class PageWalkResult {
  status = WALK_OK;
  /** Guest physical address of the byte at the GVA (on success). */
  gpa = 0;
  /** 4096, 2 MiB, 4 MiB or 1 GiB (4096 when paging is off). */
  pageSize = 4096;
  /** Final protection mask (PROT_*), independent of the access: what the page allows. */
  prot = 0;
  /** The leaf has G = 1 (with CR4.PGE the TLB entry survives CR3 writes). */
  global = false;
  /** The leaf has D = 1 (after the update, with WALK_SET_AD). */
  dirty = false;
  /** #PF error code (PFEC_*), on WALK_PAGE_FAULT. */
  errorCode = 0;
  /** The faulting linear address (for CR2) as uint32 halves. */
  faultLo = 0;
  faultHi = 0;
  /** Level of the last entry read: 5..1 (1 = PTE), 0 when paging is off. For diagnostics. */
  level = 0;
}

export interface PageWalkerOptions {
  /** MAXPHYADDR (CPUID 0x80000008 EAX[7:0]), 32..52. Default 52. */
  maxPhyAddr?: number;
  /** 1 GiB pages supported (CPUID 0x80000001 EDX[26]). Default true. */
  gbPages?: boolean;
}

/**
 * A page walker for one CPU model (MAXPHYADDR, 1 GiB pages). Reusable and cheap; it holds only
 * precomputed reserved-bit masks and a small scratch array.
 */
export class PageWalker {
  readonly maxPhyAddr: number;
  readonly gbPages: boolean;
  /** High-word reserved bits of a 4-level/5-level entry (bits 51:MAXPHYADDR). */
  private readonly rsvdHiLong: number;
  /** High-word reserved bits of a PAE PDE/PTE (bits 62:MAXPHYADDR). */
  private readonly rsvdHiPae: number;
  /** Reserved bits of a 32-bit 4 MiB PDE (bit 21 and PSE-36 bits above MAXPHYADDR). */
  private readonly rsvdPse36: number;
  /** Mask of the PSE-36 high-address bits (after shifting bits 20:13 down). */
  private readonly pse36Mask: number;
  /** Addresses of the entries used by the current walk, for A/D updates (index = level). */
  private readonly entries = new Float64Array(6);

  constructor(opts: PageWalkerOptions = {}) {
    const m = opts.maxPhyAddr ?? 52;
    if (!Number.isInteger(m) || m < 32 || m > 52) throw new RangeError(`maxPhyAddr ${m} is outside 32..52`);
    this.maxPhyAddr = m;
    this.gbPages = opts.gbPages ?? true;
    const addrHi = m === 32 ? 0 : (2 ** (m - 32)) - 1; // address bits in the high word
    this.rsvdHiLong = 0xfffff & ~addrHi;
    this.rsvdHiPae = 0x7fffffff & ~addrHi;
    const m40 = Math.min(m, 40);
    this.pse36Mask = (1 << (m40 - 32)) - 1;
    this.rsvdPse36 = (PDE32_PSE36_RSVD_BIT21 | (0xff << 13)) & ~(this.pse36Mask << 13);
  }

  /**
   * Translate (vaLo, vaHi) for the access described by `flags` (ACCESS_* | WALK_*). Fills `out`
   * and returns true on success; on failure `out.status` says why.
   */
  walk(s: PagingState, mem: PhysMemoryAccess, vaLo: number, vaHi: number, flags: number, out: PageWalkResult): boolean {
    const mode = pagingMode(s);
    out.faultLo = vaLo >>> 0;
    out.faultHi = mode >= PAGING_4LEVEL ? vaHi >>> 0 : 0;
    out.errorCode = 0;
    out.global = false;
    out.dirty = false;
    switch (mode) {
      case PAGING_NONE:
        out.status = WALK_OK; out.gpa = vaLo >>> 0; out.pageSize = 4096; out.prot = PROT_ALL; out.level = 0;
        return true;
      case PAGING_32:
        return this.walk32(s, mem, vaLo >>> 0, flags, out);
      case PAGING_PAE:
        return this.walkPae(s, mem, vaLo >>> 0, flags, out);
      default: {
        // Canonical: bits 63:47 (63:56 with LA57) all equal.
        const top = mode === PAGING_5LEVEL ? (vaHi | 0) >> 24 : (vaHi | 0) >> 15;
        if (top !== 0 && top !== -1) { out.status = WALK_NON_CANONICAL; return false; }
        return this.walkLong(s, mem, vaLo >>> 0, vaHi >>> 0, mode === PAGING_5LEVEL ? 5 : 4, flags, out);
      }
    }
  }

  private walk32(s: PagingState, mem: PhysMemoryAccess, va: number, flags: number, out: PageWalkResult): boolean {
    const e = this.entries;
    const pdeAddr = (s.cr3 % TWO32) - (s.cr3 % 4096) + (va >>> 22) * 4;
    e[2] = pdeAddr;
    out.level = 2;
    const pde = mem.read32(pdeAddr) >>> 0;
    if ((pde & PTE_P) === 0) return this.fault(s, flags, 0, out);
    let prot = PROT_READ | PROT_EXEC | (pde & PTE_RW) | ((pde & PTE_US) << 1);
    if ((pde & PTE_PS) !== 0 && (s.cr4 & CR4_PSE) !== 0) {
      if ((pde & this.rsvdPse36) !== 0) return this.fault(s, flags, PFEC_P | PFEC_RSVD, out);
      const gpa = ((pde >>> 13) & this.pse36Mask) * TWO32 + ((pde & 0xffc00000) >>> 0) + (va & 0x3fffff);
      return this.finish(s, mem, flags, out, gpa, 0x400000, prot, pde, 2, 2);
    }
    const pteAddr = ((pde & 0xfffff000) >>> 0) + ((va >>> 12) & 0x3ff) * 4;
    e[1] = pteAddr;
    out.level = 1;
    const pte = mem.read32(pteAddr) >>> 0;
    if ((pte & PTE_P) === 0) return this.fault(s, flags, 0, out);
    prot &= PROT_READ | PROT_EXEC | (pte & PTE_RW) | ((pte & PTE_US) << 1);
    return this.finish(s, mem, flags, out, ((pte & 0xfffff000) >>> 0) + (va & 0xfff), 4096, prot, pte, 1, 2);
  }

  private walkPae(s: PagingState, mem: PhysMemoryAccess, va: number, flags: number, out: PageWalkResult): boolean {
    const nxe = (s.efer & EFER_NXE) !== 0;
    const rsvdHi = this.rsvdHiPae | (nxe ? 0 : PTE_HI_XD);
    // PDPTE: 32-byte aligned table at CR3[31:5]. It has no R/W, U/S, XD or A bits.
    const pdpteAddr = (((s.cr3 % TWO32) >>> 0) & 0xffffffe0) + (va >>> 30) * 8;
    out.level = 3;
    const pdLo = mem.read32(pdpteAddr) >>> 0, pdHi = mem.read32(pdpteAddr + 4) >>> 0;
    if ((pdLo & PTE_P) === 0) return this.fault(s, flags, 0, out);
    if ((pdLo & PAE_PDPTE_RSVD_LO) !== 0 || (pdHi & (this.rsvdHiPae | PTE_HI_XD)) !== 0) {
      return this.fault(s, flags, PFEC_P | PFEC_RSVD, out);
    }
    return this.walkLevels(s, mem, va, 0, (pdHi & 0xfffff) * TWO32 + ((pdLo & 0xfffff000) >>> 0), 2, rsvdHi, PROT_ALL, 2, flags, out);
  }

  private walkLong(s: PagingState, mem: PhysMemoryAccess, vaLo: number, vaHi: number, levels: number, flags: number,
    out: PageWalkResult): boolean {
    const nxe = (s.efer & EFER_NXE) !== 0;
    const rsvdHi = this.rsvdHiLong | (nxe ? 0 : PTE_HI_XD);
    const cr3 = s.cr3 % 4503599627370496; // 2^52
    return this.walkLevels(s, mem, vaLo, vaHi, cr3 - (cr3 % 4096), levels, rsvdHi, PROT_ALL, levels, flags, out);
  }

  /** Walk 64-bit entries from `level` down to the leaf (shared by PAE and long mode). */
  private walkLevels(s: PagingState, mem: PhysMemoryAccess, vaLo: number, vaHi: number, table: number, level: number,
    rsvdHi: number, prot: number, top: number, flags: number, out: PageWalkResult): boolean {
    const nxe = (s.efer & EFER_NXE) !== 0;
    const e = this.entries;
    for (;;) {
      let idx: number;
      switch (level) {
        case 5: idx = (vaHi >>> 16) & 0x1ff; break;
        case 4: idx = (vaHi >>> 7) & 0x1ff; break;
        case 3: idx = ((vaHi & 0x7f) << 2) | (vaLo >>> 30); break;
        case 2: idx = (vaLo >>> 21) & 0x1ff; break;
        default: idx = (vaLo >>> 12) & 0x1ff; break;
      }
      const addr = table + idx * 8;
      e[level] = addr;
      out.level = level;
      const lo = mem.read32(addr) >>> 0, hi = mem.read32(addr + 4) >>> 0;
      if ((lo & PTE_P) === 0) return this.fault(s, flags, 0, out);
      const ps = (lo & PTE_PS) !== 0;
      if ((hi & rsvdHi) !== 0 ||
        (ps && (level >= 4 ||
          (level === 3 && (!this.gbPages || (lo & PDPTE_1G_RSVD) !== 0)) ||
          (level === 2 && (lo & PDE_2M_RSVD) !== 0)))) {
        return this.fault(s, flags, PFEC_P | PFEC_RSVD, out);
      }
      prot &= PROT_READ | (lo & PTE_RW) | ((lo & PTE_US) << 1) | (nxe && (hi & PTE_HI_XD) !== 0 ? 0 : PROT_EXEC);
      const frame = (hi & 0xfffff) * TWO32 + ((lo & 0xfffff000) >>> 0);
      if (level === 1) return this.finish(s, mem, flags, out, frame + (vaLo & 0xfff), 4096, prot, lo, 1, top);
      if (ps) {
        if (level === 2) {
          return this.finish(s, mem, flags, out, frame - (frame % 0x200000) + (vaLo & 0x1fffff), 0x200000, prot, lo, 2, top);
        }
        return this.finish(s, mem, flags, out, frame - (frame % 0x40000000) + (vaLo & 0x3fffffff), 0x40000000, prot, lo, 3, top);
      }
      table = frame;
      level--;
    }
  }

  /** Permission checks, A/D updates, and the success result. */
  private finish(s: PagingState, mem: PhysMemoryAccess, flags: number, out: PageWalkResult, gpa: number, pageSize: number,
    prot: number, leaf: number, leafLevel: number, top: number): boolean {
    if ((flags & WALK_NO_CHECK) === 0 && accessDenied(s, prot, flags)) return this.fault(s, flags, PFEC_P, out);
    let dirty = (leaf & PTE_D) !== 0;
    if ((flags & WALK_SET_AD) !== 0) {
      const or32 = mem.or32;
      if (or32 === undefined) throw new Error('tsvmm assertion failed: WALK_SET_AD needs PhysMemoryAccess.or32');
      const e = this.entries;
      // Upper levels: only the accessed bit (reading it again: another level may share the word).
      for (let l = top; l > leafLevel; l--) {
        const a = e[l]!;
        if (a >= 0 && (mem.read32(a) & PTE_A) === 0) or32.call(mem, a, PTE_A);
      }
      const want = PTE_A | ((flags & ACCESS_WRITE) !== 0 ? PTE_D : 0);
      if ((leaf & want) !== want) or32.call(mem, e[leafLevel]!, want);
      if ((flags & ACCESS_WRITE) !== 0) dirty = true;
    }
    out.status = WALK_OK;
    out.gpa = gpa;
    out.pageSize = pageSize;
    out.prot = prot;
    out.global = (leaf & PTE_G) !== 0;
    out.dirty = dirty;
    return true;
  }

  private fault(s: PagingState, flags: number, bits: number, out: PageWalkResult): boolean {
    let ec = bits | (flags & (ACCESS_WRITE | ACCESS_USER));
    if ((flags & ACCESS_FETCH) !== 0) {
      ec &= ~ACCESS_WRITE;
      const nxPaging = (s.cr4 & CR4_PAE) !== 0 && (s.efer & EFER_NXE) !== 0;
      if ((s.cr4 & CR4_SMEP) !== 0 || nxPaging) ec |= PFEC_ID;
    }
    out.status = WALK_PAGE_FAULT;
    out.errorCode = ec;
    return false;
  }
}

/**
 * Does the page's protection `prot` forbid the access in `flags`? (SDM vol. 3A §4.6.)
 * User accesses need U at every level, plus W for writes and X for fetches. Supervisor fetches
 * need X and, with SMEP, a supervisor page. Supervisor writes need W when CR0.WP = 1. With SMAP,
 * supervisor data accesses to user pages fault unless explicit with RFLAGS.AC = 1.
 */
export function accessDenied(s: PagingState, prot: number, flags: number): boolean {
  const write = (flags & ACCESS_WRITE) !== 0;
  if ((flags & ACCESS_USER) !== 0) {
    if ((prot & PROT_USER) === 0) return true;
    if ((flags & ACCESS_FETCH) !== 0) return (prot & PROT_EXEC) === 0;
    return write && (prot & PROT_WRITE) === 0;
  }
  if ((flags & ACCESS_FETCH) !== 0) {
    return (prot & PROT_EXEC) === 0 || ((s.cr4 & CR4_SMEP) !== 0 && (prot & PROT_USER) !== 0);
  }
  if (write && (prot & PROT_WRITE) === 0 && (s.cr0 & CR0_WP) !== 0) return true;
  return (s.cr4 & CR4_SMAP) !== 0 && (prot & PROT_USER) !== 0 &&
    ((flags & WALK_IMPLICIT) !== 0 || (flags & WALK_AC) === 0);
}

const defaultWalker = new PageWalker();

/**
 * Convenience for the API layer: translate a GVA given as a bigint (any 64-bit value, signed or
 * unsigned) or a non-negative number below 2^53. Allocates a result unless one is passed.
 */
export function walkGva(s: PagingState, mem: PhysMemoryAccess, gva: bigint | number, flags: number,
  out: PageWalkResult = new PageWalkResult(), walker: PageWalker = defaultWalker): PageWalkResult {
  let lo: number, hi: number;
  if (typeof gva === 'bigint') {
    const u = BigInt.asUintN(64, gva);
    lo = Number(u & 0xffffffffn); hi = Number(u >> 32n);
  } else {
    if (!Number.isSafeInteger(gva) || gva < 0) throw new RangeError(`GVA ${gva} is not an integer in 0..2^53`);
    lo = gva % TWO32; hi = Math.floor(gva / TWO32);
  }
  walker.walk(s, mem, lo, hi, flags, out);
  return out;
}
