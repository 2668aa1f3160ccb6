import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TWO32 } from '../../src/common/bits.js';
import { CR0_PG, CR0_WP, CR4_LA57, CR4_PAE, CR4_PSE, CR4_SMAP, CR4_SMEP, EFER_LMA, EFER_NXE } from '../../src/x86/control-regs.js';
import {
  ACCESS_FETCH, ACCESS_READ, ACCESS_USER, ACCESS_WRITE, PAGING_32, PAGING_4LEVEL, PAGING_5LEVEL, PAGING_NONE, PAGING_PAE, PFEC_ID, PFEC_P,
  PFEC_RSVD, PFEC_U, PFEC_W, PROT_ALL, PROT_EXEC, PROT_READ, PROT_USER, PROT_WRITE, PageWalkResult, PageWalker,
  WALK_AC, WALK_IMPLICIT, WALK_NON_CANONICAL, WALK_NO_CHECK, WALK_OK, WALK_PAGE_FAULT, WALK_SET_AD, pagingMode,
  walkGva, type PagingState, type PhysMemoryAccess,
} from '../../src/x86/page-walk.js';

// Entry bits, spelled out here independently of the module.
const P = 0x1, RW = 0x2, US = 0x4, A = 0x20, D = 0x40, PS = 0x80, G = 0x100;
const XD_HI = 0x80000000;

/** Sparse guest memory: 4 KiB pages on demand; unbacked reads return all ones. */
class SparseMemory implements PhysMemoryAccess {
  readonly pages = new Map<number, Uint32Array>();
  writes = 0;
  read32(gpa: number): number {
    const p = this.pages.get(Math.floor(gpa / 4096));
    return p ? p[(gpa % 4096) >>> 2]! : 0xffffffff;
  }
  or32(gpa: number, bits: number): void {
    const p = this.page(gpa);
    p[(gpa % 4096) >>> 2]! |= bits;
    this.writes++;
  }
  page(gpa: number): Uint32Array {
    const n = Math.floor(gpa / 4096);
    let p = this.pages.get(n);
    if (!p) { p = new Uint32Array(1024); this.pages.set(n, p); }
    return p;
  }
  write32(gpa: number, v: number): void { this.page(gpa)[(gpa % 4096) >>> 2] = v >>> 0; }
  write64(gpa: number, lo: number, hi: number): void { this.write32(gpa, lo); this.write32(gpa + 4, hi); }
  lo(gpa: number): number { return this.read32(gpa) >>> 0; }
}

const LONG: PagingState = { cr0: CR0_PG | CR0_WP | 1, cr3: 0x1000, cr4: CR4_PAE, efer: EFER_LMA | EFER_NXE | (1 << 8) };

/**
 * A 4-level (or 5-level) table set mapping one GVA, tables at 0x1000, 0x2000, ... Returns the
 * address of each level's entry (index = level) so tests can tweak them.
 */
function buildLong(mem: SparseMemory, levels: number, va: bigint, leafLevel: number, frame: number, leafBits: number,
  upperBits = P | RW | US): number[] {
  const entryAt: number[] = [];
  let table = 0x1000;
  let next = 0x2000;
  for (let level = levels; level >= leafLevel; level--) {
    const idx = Number((va >> BigInt(12 + 9 * (level - 1))) & 0x1ffn);
    const addr = table + idx * 8;
    entryAt[level] = addr;
    if (level === leafLevel) {
      mem.write64(addr, (frame % TWO32) | leafBits | (leafLevel > 1 ? PS : 0), Math.floor(frame / TWO32));
    } else {
      mem.write64(addr, next | upperBits, 0);
      table = next;
      next += 0x1000;
    }
  }
  return entryAt;
}

function walk(s: PagingState, mem: PhysMemoryAccess, va: bigint, flags: number, walker = new PageWalker()): PageWalkResult {
  return walkGva(s, mem, va, flags, new PageWalkResult(), walker);
}

test('mode selection from CR0.PG, CR4.PAE, EFER.LMA, CR4.LA57', () => {
  assert.equal(pagingMode({ cr0: 1, cr3: 0, cr4: CR4_PAE, efer: EFER_LMA }), PAGING_NONE);
  assert.equal(pagingMode({ cr0: CR0_PG | 1, cr3: 0, cr4: 0, efer: 0 }), PAGING_32);
  assert.equal(pagingMode({ cr0: CR0_PG | 1, cr3: 0, cr4: CR4_PAE, efer: 0 }), PAGING_PAE);
  assert.equal(pagingMode({ cr0: CR0_PG | 1, cr3: 0, cr4: CR4_PAE, efer: EFER_LMA }), PAGING_4LEVEL);
  assert.equal(pagingMode({ cr0: CR0_PG | 1, cr3: 0, cr4: CR4_PAE | CR4_LA57, efer: EFER_LMA }), PAGING_5LEVEL);
});

test('paging off is the identity on the low 32 bits', () => {
  const r = walk({ cr0: 1, cr3: 0, cr4: 0, efer: 0 }, new SparseMemory(), 0x12345678n, ACCESS_WRITE | ACCESS_USER);
  assert.equal(r.status, WALK_OK);
  assert.equal(r.gpa, 0x12345678);
  assert.equal(r.prot, PROT_ALL);
});

test('4-level: 4 KiB, 2 MiB and 1 GiB pages', () => {
  const va = 0x00007f12_3456_789an;
  for (const [leaf, size, frame] of [[1, 4096, 0x1_2345_6000], [2, 0x200000, 0x3_4560_0000], [3, 0x40000000, 0x40_c000_0000]] as const) {
    const mem = new SparseMemory();
    buildLong(mem, 4, va, leaf, frame, P | RW | US | G);
    const r = walk(LONG, mem, va, ACCESS_READ);
    assert.equal(r.status, WALK_OK, `leaf ${leaf}`);
    assert.equal(r.pageSize, size);
    assert.equal(r.gpa, frame + Number(va % BigInt(size)));
    assert.equal(r.prot, PROT_ALL);
    assert.equal(r.global, true);
    assert.equal(r.level, leaf);
  }
});

test('4-level: the PAT bit of a large page is not an address bit; PCID bits of CR3 are ignored', () => {
  const mem = new SparseMemory();
  const va = 0x4020_1234n;
  const e = buildLong(mem, 4, va, 2, 0x4000_0000, P | RW);
  mem.write32(e[2]!, mem.lo(e[2]!) | 0x1000); // PAT
  const r = walk({ ...LONG, cr3: 0x1000 | 0x5a5 }, mem, va, ACCESS_READ);
  assert.equal(r.status, WALK_OK);
  assert.equal(r.gpa, 0x4000_0000 + 0x1234);
});

test('5-level paging and the 57-bit canonical check', () => {
  const s: PagingState = { ...LONG, cr4: CR4_PAE | CR4_LA57 };
  const va = 0x00ff_8000_1234_5678n; // bits 55:48 and 47 set: canonical only with 57-bit addresses
  const mem = new SparseMemory();
  buildLong(mem, 5, va, 1, 0x9000, P | RW);
  const r = walk(s, mem, va, ACCESS_READ);
  assert.equal(r.status, WALK_OK);
  assert.equal(r.gpa, 0x9678);
  assert.equal(r.level, 1);
  assert.equal(walk(LONG, mem, va, ACCESS_READ).status, WALK_NON_CANONICAL);
  assert.equal(walk(s, mem, 0x0100_0000_0000_0000n, ACCESS_READ).status, WALK_NON_CANONICAL);
  // A canonical high-half address with all upper bits set, given as a negative bigint.
  const hi = -0x1000n;
  const mem2 = new SparseMemory();
  buildLong(mem2, 5, BigInt.asUintN(64, hi), 1, 0x7000, P);
  assert.equal(walk(s, mem2, hi, ACCESS_READ).gpa, 0x7000);
});

test('4-level: non-canonical addresses are reported as such, not as #PF', () => {
  const mem = new SparseMemory();
  for (const va of [0x0000_8000_0000_0000n, 0xffff_7fff_ffff_f000n, 0x8000_0000_0000_0000n]) {
    const r = walk(LONG, mem, va, ACCESS_READ);
    assert.equal(r.status, WALK_NON_CANONICAL, va.toString(16));
  }
  const mem2 = new SparseMemory();
  buildLong(mem2, 4, 0xffff_8000_0000_0000n, 1, 0x5000, P);
  assert.equal(walk(LONG, mem2, 0xffff_8000_0000_0000n, ACCESS_READ).gpa, 0x5000);
});

test('non-present at each level: #PF with P=0 and the access bits, CR2 = the address', () => {
  for (const levels of [4, 5]) {
    const s = levels === 5 ? { ...LONG, cr4: CR4_PAE | CR4_LA57 } : LONG;
    for (let level = levels; level >= 1; level--) {
      const mem = new SparseMemory();
      const va = 0x0000_1234_5678_9000n;
      const e = buildLong(mem, levels, va, 1, 0x8000, P | RW | US);
      mem.write32(e[level]!, mem.lo(e[level]!) & ~P);
      const r = walk(s, mem, va, ACCESS_WRITE | ACCESS_USER);
      assert.equal(r.status, WALK_PAGE_FAULT);
      assert.equal(r.errorCode, PFEC_W | PFEC_U, `levels ${levels} level ${level}`);
      assert.equal(r.level, level);
      assert.equal(r.faultLo, 0x5678_9000);
      assert.equal(r.faultHi, 0x1234);
    }
  }
});

test('permissions narrow level by level: R/W, U/S and XD at each level', () => {
  const va = 0x0000_0040_0060_3000n;
  for (let level = 4; level >= 1; level--) {
    for (const [bit, hiBit] of [[RW, 0], [US, 0], [0, XD_HI]] as const) {
      const mem = new SparseMemory();
      const e = buildLong(mem, 4, va, 1, 0xa000, P | RW | US);
      if (bit) mem.write32(e[level]!, mem.lo(e[level]!) & ~bit);
      if (hiBit) mem.write32(e[level]! + 4, hiBit);
      const r = walk(LONG, mem, va, ACCESS_READ | WALK_NO_CHECK);
      assert.equal(r.status, WALK_OK);
      const expect = PROT_ALL & ~(bit === RW ? PROT_WRITE : bit === US ? PROT_USER : PROT_EXEC);
      assert.equal(r.prot, expect, `level ${level} bit ${bit} ${hiBit}`);
      const what = `level ${level}`;
      if (bit === RW) {
        assert.equal(walk(LONG, mem, va, ACCESS_WRITE | ACCESS_USER).errorCode, PFEC_P | PFEC_W | PFEC_U, what);
        assert.equal(walk(LONG, mem, va, ACCESS_WRITE).errorCode, PFEC_P | PFEC_W, what); // CR0.WP = 1
        assert.equal(walk({ ...LONG, cr0: CR0_PG | 1 }, mem, va, ACCESS_WRITE).status, WALK_OK, what); // WP = 0
        assert.equal(walk({ ...LONG, cr0: CR0_PG | 1 }, mem, va, ACCESS_WRITE | ACCESS_USER).status, WALK_PAGE_FAULT, what);
        assert.equal(walk(LONG, mem, va, ACCESS_READ | ACCESS_USER).status, WALK_OK, what);
      } else if (bit === US) {
        assert.equal(walk(LONG, mem, va, ACCESS_READ | ACCESS_USER).errorCode, PFEC_P | PFEC_U, what);
        assert.equal(walk(LONG, mem, va, ACCESS_FETCH | ACCESS_USER).errorCode, PFEC_P | PFEC_U | PFEC_ID, what);
        assert.equal(walk(LONG, mem, va, ACCESS_WRITE).status, WALK_OK, what);
      } else {
        assert.equal(walk(LONG, mem, va, ACCESS_FETCH).errorCode, PFEC_P | PFEC_ID, what);
        assert.equal(walk(LONG, mem, va, ACCESS_FETCH | ACCESS_USER).errorCode, PFEC_P | PFEC_U | PFEC_ID, what);
        assert.equal(walk(LONG, mem, va, ACCESS_READ | ACCESS_USER).status, WALK_OK, what);
        // Without EFER.NXE, bit 63 is reserved.
        const r2 = walk({ ...LONG, efer: EFER_LMA }, mem, va, ACCESS_READ);
        assert.equal(r2.errorCode, PFEC_P | PFEC_RSVD, what);
      }
    }
  }
});

test('SMEP and SMAP', () => {
  const va = 0x0000_0000_0040_0000n;
  const mem = new SparseMemory();
  buildLong(mem, 4, va, 1, 0xb000, P | RW | US);
  const smep = { ...LONG, cr4: CR4_PAE | CR4_SMEP };
  const smap = { ...LONG, cr4: CR4_PAE | CR4_SMAP };
  assert.equal(walk(LONG, mem, va, ACCESS_FETCH).status, WALK_OK);
  assert.equal(walk(smep, mem, va, ACCESS_FETCH).errorCode, PFEC_P | PFEC_ID);
  assert.equal(walk(smep, mem, va, ACCESS_FETCH | ACCESS_USER).status, WALK_OK);
  assert.equal(walk(smep, mem, va, ACCESS_WRITE).status, WALK_OK);
  assert.equal(walk(smap, mem, va, ACCESS_READ).errorCode, PFEC_P);
  assert.equal(walk(smap, mem, va, ACCESS_WRITE).errorCode, PFEC_P | PFEC_W);
  assert.equal(walk(smap, mem, va, ACCESS_WRITE | WALK_AC).status, WALK_OK);
  assert.equal(walk(smap, mem, va, ACCESS_READ | WALK_AC | WALK_IMPLICIT).errorCode, PFEC_P);
  assert.equal(walk(smap, mem, va, ACCESS_READ | ACCESS_USER).status, WALK_OK);
  assert.equal(walk(smap, mem, va, ACCESS_FETCH).status, WALK_OK); // SMAP is for data only
  // Supervisor pages are unaffected.
  const mem2 = new SparseMemory();
  buildLong(mem2, 4, va, 1, 0xb000, P | RW);
  assert.equal(walk({ ...LONG, cr4: CR4_PAE | CR4_SMAP | CR4_SMEP }, mem2, va, ACCESS_FETCH).status, WALK_OK);
  assert.equal(walk({ ...LONG, cr4: CR4_PAE | CR4_SMAP | CR4_SMEP }, mem2, va, ACCESS_WRITE).status, WALK_OK);
});

test('4-level reserved bits: above MAXPHYADDR, PS in PML4/PML5, large-page bits, 1 GiB unsupported', () => {
  const va = 0x0000_0001_4020_0000n;
  const w40 = new PageWalker({ maxPhyAddr: 40 });
  for (let level = 4; level >= 1; level--) {
    const mem = new SparseMemory();
    const e = buildLong(mem, 4, va, 1, 0xc000, P | RW);
    assert.equal(walk(LONG, mem, va, ACCESS_READ, w40).status, WALK_OK);
    mem.write32(e[level]! + 4, 1 << 8); // address bit 40
    assert.equal(walk(LONG, mem, va, ACCESS_READ, w40).errorCode, PFEC_P | PFEC_RSVD, `level ${level}`);
    if (level === 1) assert.equal(walk(LONG, mem, va, ACCESS_READ).status, WALK_OK, 'MAXPHYADDR 52');
    mem.write32(e[level]! + 4, 0x7ff00000); // bits 62:52 are ignored in 4-level paging
    assert.equal(walk(LONG, mem, va, ACCESS_READ, w40).status, WALK_OK);
  }
  const mem = new SparseMemory();
  const e = buildLong(mem, 4, va, 1, 0xc000, P | RW);
  mem.write32(e[4]!, mem.lo(e[4]!) | PS);
  assert.equal(walk(LONG, mem, va, ACCESS_READ | ACCESS_WRITE).errorCode, PFEC_P | PFEC_RSVD | PFEC_W);
  const s5 = { ...LONG, cr4: CR4_PAE | CR4_LA57 };
  const mem5 = new SparseMemory();
  const e5 = buildLong(mem5, 5, va, 1, 0xc000, P | RW);
  mem5.write32(e5[5]!, mem5.lo(e5[5]!) | PS);
  assert.equal(walk(s5, mem5, va, ACCESS_READ).errorCode, PFEC_P | PFEC_RSVD);

  const m2 = new SparseMemory();
  const e2 = buildLong(m2, 4, va, 2, 0x4000_0000, P | RW);
  m2.write32(e2[2]!, m2.lo(e2[2]!) | 0x2000); // bit 13 of a 2 MiB PDE
  assert.equal(walk(LONG, m2, va, ACCESS_READ).errorCode, PFEC_P | PFEC_RSVD);
  const m3 = new SparseMemory();
  const e3 = buildLong(m3, 4, va, 3, 0x4000_0000, P | RW);
  assert.equal(walk(LONG, m3, va, ACCESS_READ).status, WALK_OK);
  assert.equal(walk(LONG, m3, va, ACCESS_READ, new PageWalker({ gbPages: false })).errorCode, PFEC_P | PFEC_RSVD);
  m3.write32(e3[3]!, m3.lo(e3[3]!) | 0x2000_0000); // bit 29 of a 1 GiB PDPTE
  assert.equal(walk(LONG, m3, va, ACCESS_READ).errorCode, PFEC_P | PFEC_RSVD);
  // A reserved-bit fault on a fetch carries I/D.
  assert.equal(walk(LONG, m3, va, ACCESS_FETCH | ACCESS_USER).errorCode, PFEC_P | PFEC_RSVD | PFEC_ID | PFEC_U);
});

// ---------------------------------------------------------------------------------------------
// PAE paging

const PAE: PagingState = { cr0: CR0_PG | CR0_WP | 1, cr3: 0x1020, cr4: CR4_PAE, efer: EFER_NXE };

/** PDPT at CR3 (0x1020), PD at 0x2000, PT at 0x3000. */
function buildPae(mem: SparseMemory, va: number, large: boolean, frame: number, leafBits: number): number[] {
  const pdpte = 0x1020 + (va >>> 30) * 8;
  mem.write64(pdpte, 0x2000 | P, 0);
  const pde = 0x2000 + ((va >>> 21) & 0x1ff) * 8;
  if (large) {
    mem.write64(pde, (frame % TWO32) | PS | leafBits, Math.floor(frame / TWO32));
    return [0, 0, pde, pdpte];
  }
  mem.write64(pde, 0x3000 | P | RW | US, 0);
  const pte = 0x3000 + ((va >>> 12) & 0x1ff) * 8;
  mem.write64(pte, (frame % TWO32) | leafBits, Math.floor(frame / TWO32));
  return [0, pte, pde, pdpte];
}

test('PAE: 4 KiB and 2 MiB pages, frames above 4 GiB', () => {
  const va = 0xc0a0_1234;
  const mem = new SparseMemory();
  buildPae(mem, va, false, 0x2_0000_5000, P | RW | US);
  let r = walk(PAE, mem, BigInt(va), ACCESS_WRITE | ACCESS_USER);
  assert.equal(r.status, WALK_OK);
  assert.equal(r.gpa, 0x2_0000_5234);
  assert.equal(r.pageSize, 4096);
  const mem2 = new SparseMemory();
  buildPae(mem2, va, true, 0x1_4000_0000, P | RW);
  r = walk(PAE, mem2, BigInt(va), ACCESS_READ);
  assert.equal(r.gpa, 0x1_4000_1234);
  assert.equal(r.pageSize, 0x200000);
  assert.equal(r.prot, PROT_READ | PROT_WRITE | PROT_EXEC);
  // The high half of the GVA is ignored outside long mode.
  assert.equal(walk(PAE, mem2, 0xffff_ffff_0000_0000n + BigInt(va), ACCESS_READ).gpa, 0x1_4000_1234);
});

test('PAE: PDPTE reserved bits, non-present PDPTE, bits 62:MAXPHYADDR and XD reserved', () => {
  const va = 0x4000_0000;
  for (const bits of [RW, US, A, 0x100]) {
    const mem = new SparseMemory();
    const e = buildPae(mem, va, false, 0x5000, P | RW);
    mem.write32(e[3]!, mem.lo(e[3]!) | bits);
    assert.equal(walk(PAE, mem, BigInt(va), ACCESS_READ).errorCode, PFEC_P | PFEC_RSVD, `bits ${bits}`);
  }
  const mem = new SparseMemory();
  const e = buildPae(mem, va, false, 0x5000, P | RW);
  mem.write32(e[3]! + 4, XD_HI);
  assert.equal(walk(PAE, mem, BigInt(va), ACCESS_READ).errorCode, PFEC_P | PFEC_RSVD);
  mem.write32(e[3]! + 4, 0);
  mem.write32(e[3]!, 0);
  assert.equal(walk(PAE, mem, BigInt(va), ACCESS_WRITE).errorCode, PFEC_W);
  assert.equal(walk(PAE, mem, BigInt(va), ACCESS_WRITE).level, 3);

  const m2 = new SparseMemory();
  const e2 = buildPae(m2, va, false, 0x5000, P | RW);
  m2.write32(e2[1]! + 4, 0x4000_0000); // bit 62: reserved in PAE paging (ignored in 4-level)
  assert.equal(walk(PAE, m2, BigInt(va), ACCESS_READ).errorCode, PFEC_P | PFEC_RSVD);
  m2.write32(e2[1]! + 4, XD_HI);
  assert.equal(walk(PAE, m2, BigInt(va), ACCESS_FETCH).errorCode, PFEC_P | PFEC_ID);
  assert.equal(walk({ ...PAE, efer: 0 }, m2, BigInt(va), ACCESS_READ).errorCode, PFEC_P | PFEC_RSVD);
  m2.write32(e2[1]! + 4, 0);
  m2.write32(e2[2]!, m2.lo(e2[2]!) & ~US);
  assert.equal(walk(PAE, m2, BigInt(va), ACCESS_READ | ACCESS_USER).errorCode, PFEC_P | PFEC_U);
  // Without NXE, a fetch fault has no I/D bit (and no SMEP).
  assert.equal(walk({ ...PAE, efer: 0 }, m2, BigInt(va), ACCESS_FETCH | ACCESS_USER).errorCode, PFEC_P | PFEC_U);
  const m3 = new SparseMemory();
  const e3 = buildPae(m3, va, true, 0x20_0000, P | RW);
  m3.write32(e3[2]!, m3.lo(e3[2]!) | 0x4000);
  assert.equal(walk(PAE, m3, BigInt(va), ACCESS_READ).errorCode, PFEC_P | PFEC_RSVD);
});

// ---------------------------------------------------------------------------------------------
// 32-bit paging

const P32: PagingState = { cr0: CR0_PG | CR0_WP | 1, cr3: 0x1000, cr4: 0, efer: 0 };

test('32-bit paging: 4 KiB pages, non-present and permissions at both levels', () => {
  const va = 0x8040_3abc;
  const mem = new SparseMemory();
  const pde = 0x1000 + (va >>> 22) * 4, pte = 0x2000 + ((va >>> 12) & 0x3ff) * 4;
  mem.write32(pde, 0x2000 | P | RW | US);
  mem.write32(pte, 0xfeed_f000 | P | RW | US);
  let r = walk(P32, mem, BigInt(va), ACCESS_WRITE | ACCESS_USER);
  assert.equal(r.status, WALK_OK);
  assert.equal(r.gpa, 0xfeed_fabc);
  assert.equal(r.prot, PROT_ALL);
  for (const e of [pde, pte]) {
    const save = mem.lo(e);
    mem.write32(e, save & ~RW);
    assert.equal(walk(P32, mem, BigInt(va), ACCESS_WRITE | ACCESS_USER).errorCode, PFEC_P | PFEC_W | PFEC_U);
    assert.equal(walk({ ...P32, cr0: CR0_PG | 1 }, mem, BigInt(va), ACCESS_WRITE).status, WALK_OK);
    mem.write32(e, save & ~US);
    assert.equal(walk(P32, mem, BigInt(va), ACCESS_READ | ACCESS_USER).errorCode, PFEC_P | PFEC_U);
    // No I/D bit without PAE+NXE or SMEP; with SMEP there is one.
    assert.equal(walk(P32, mem, BigInt(va), ACCESS_FETCH | ACCESS_USER).errorCode, PFEC_P | PFEC_U);
    assert.equal(walk({ ...P32, cr4: CR4_SMEP }, mem, BigInt(va), ACCESS_FETCH | ACCESS_USER).errorCode,
      PFEC_P | PFEC_U | PFEC_ID);
    mem.write32(e, save & ~P);
    r = walk(P32, mem, BigInt(va), ACCESS_READ);
    assert.equal(r.errorCode, 0);
    assert.equal(r.level, e === pde ? 2 : 1);
    mem.write32(e, save);
  }
  // SMEP applies in 32-bit paging too.
  assert.equal(walk({ ...P32, cr4: CR4_SMEP }, mem, BigInt(va), ACCESS_FETCH).errorCode, PFEC_P | PFEC_ID);
});

test('32-bit paging: 4 MiB pages with PSE, PSE-36 high bits, PS ignored without PSE', () => {
  const va = 0x8076_5432;
  const mem = new SparseMemory();
  const pde = 0x1000 + (va >>> 22) * 4;
  mem.write32(pde, 0x0c00_0000 | (0x12 << 13) | 0x1000 /* PAT */ | PS | P | RW | G);
  const pse = { ...P32, cr4: CR4_PSE };
  let r = walk(pse, mem, BigInt(va), ACCESS_READ);
  assert.equal(r.status, WALK_OK);
  assert.equal(r.pageSize, 0x400000);
  assert.equal(r.gpa, 0x12 * TWO32 + 0x0c00_0000 + 0x36_5432);
  assert.equal(r.global, true);
  // MAXPHYADDR 36: PSE-36 bit 4 of the high address (PDE bit 17) is reserved.
  assert.equal(walk(pse, mem, BigInt(va), ACCESS_READ, new PageWalker({ maxPhyAddr: 36 })).errorCode, PFEC_P | PFEC_RSVD);
  mem.write32(pde, 0x0c00_0000 | (1 << 21) | PS | P);
  assert.equal(walk(pse, mem, BigInt(va), ACCESS_READ).errorCode, PFEC_P | PFEC_RSVD);
  // Without CR4.PSE the entry points to a page table (at 0x0c000000 here, unbacked: all ones).
  mem.write32(pde, 0x3000 | PS | P | RW);
  mem.write32(0x3000 + ((va >>> 12) & 0x3ff) * 4, 0x7000 | P);
  r = walk(P32, mem, BigInt(va), ACCESS_READ);
  assert.equal(r.pageSize, 4096);
  assert.equal(r.gpa, 0x7432);
});

// ---------------------------------------------------------------------------------------------
// Accessed and dirty bits

test('A/D updates: only with WALK_SET_AD, only on success, D only on the leaf for writes', () => {
  const va = 0x0000_0000_0060_1000n;
  const mem = new SparseMemory();
  const e = buildLong(mem, 4, va, 1, 0xd000, P | RW);
  walk(LONG, mem, va, ACCESS_WRITE);
  assert.equal(mem.writes, 0);
  let r = walk(LONG, mem, va, ACCESS_READ | WALK_SET_AD);
  assert.equal(r.dirty, false);
  for (let l = 4; l >= 1; l--) assert.equal(mem.lo(e[l]!) & (A | D), A, `level ${l}`);
  r = walk(LONG, mem, va, ACCESS_WRITE | WALK_SET_AD);
  assert.equal(r.dirty, true);
  for (let l = 4; l >= 2; l--) assert.equal(mem.lo(e[l]!) & (A | D), A, `level ${l}`);
  assert.equal(mem.lo(e[1]!) & (A | D), A | D);
  const before = mem.writes;
  walk(LONG, mem, va, ACCESS_WRITE | WALK_SET_AD);
  assert.equal(mem.writes, before, 'no writes when the bits are already set');

  // A faulting walk changes nothing.
  const m2 = new SparseMemory();
  buildLong(m2, 4, va, 1, 0xd000, P);
  assert.equal(walk(LONG, m2, va, ACCESS_WRITE | WALK_SET_AD).status, WALK_PAGE_FAULT);
  assert.equal(m2.writes, 0);

  // 2 MiB leaf gets D; PAE PDPTEs (no A bit) are left alone; 32-bit paging too.
  const m3 = new SparseMemory();
  const e3 = buildLong(m3, 4, va, 2, 0x20_0000, P | RW);
  walk(LONG, m3, va, ACCESS_WRITE | WALK_SET_AD);
  assert.equal(m3.lo(e3[2]!) & (A | D), A | D);
  const m4 = new SparseMemory();
  const e4 = buildPae(m4, 0x4000_1000, false, 0x5000, P | RW);
  walk(PAE, m4, 0x4000_1000n, ACCESS_WRITE | WALK_SET_AD);
  assert.equal(m4.lo(e4[3]!), 0x2000 | P);
  assert.equal(m4.lo(e4[2]!) & (A | D), A);
  assert.equal(m4.lo(e4[1]!) & (A | D), A | D);
  const m5 = new SparseMemory();
  m5.write32(0x1000, 0x2000 | P | RW);
  m5.write32(0x2000, 0x9000 | P | RW);
  walk(P32, m5, 0n, ACCESS_WRITE | WALK_SET_AD);
  assert.equal(m5.lo(0x1000) & (A | D), A);
  assert.equal(m5.lo(0x2000) & (A | D), A | D);
});

test('walkGva accepts numbers and bigints; reusing a result and walker', () => {
  const mem = new SparseMemory();
  buildLong(mem, 4, 0x7fff_ffff_f000n, 1, 0xe000, P | RW | US);
  const out = new PageWalkResult();
  const w = new PageWalker({ maxPhyAddr: 46 });
  assert.equal(walkGva(LONG, mem, 0x7fff_ffff_f123, ACCESS_READ, out, w).gpa, 0xe123);
  assert.equal(walkGva(LONG, mem, 0x7fff_ffff_f456n, ACCESS_READ, out, w).gpa, 0xe456);
  assert.equal(w.walk(LONG, mem, 0xffff_f789 | 0, 0x7fff, ACCESS_READ, out), true);
  assert.equal(out.gpa, 0xe789);
  assert.throws(() => walkGva(LONG, mem, -1, ACCESS_READ));
  assert.throws(() => new PageWalker({ maxPhyAddr: 60 }));
});
