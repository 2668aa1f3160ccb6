/**
 * VEX-encoded opcode maps (index = VEX.mmmmm: 1 = 0F, 2 = 0F38, 3 = 0F3A; 0 unused).
 * Same notation as opcode-tables.ts; the mandatory-prefix split uses VEX.pp.
 *
 * Most AVX forms are the SSE forms with a `v` and, for the non-destructive-source ones, the extra
 * VEX.vvvv operand (H) after the destination; they are derived from the legacy tables here
 * (data transformed once at load), plus the VEX-only instructions listed explicitly.
 */
import { MAP_0F38, MAP_0F3A, SplitKind, tableHelpers, TWO_BYTE_MAP, type Node } from './opcode-tables.js';

const { pfx, mod, rexw, vexl, grp, od, m64 } = tableHelpers;
/** VEX.W selects a 64-bit form in long mode only (VEX.W is ignored elsewhere). */
const w64 = (w0: Node, w1: Node): Node => rexw(w0, m64(w0, w1));

/** AVX-512 mask instructions with a VEX encoding: size by VEX.pp and VEX.W (w q / b d), as [pp0, pp1]. */
function maskOp(name: string, ops: string): Node {
  return pfx(rexw(`${name}w ${ops}`, `${name}q ${ops}`), rexw(`${name}b ${ops}`, `${name}d ${ops}`));
}

/** SSE instructions whose VEX form has no VEX.vvvv source (VEX.vvvv must be 1111). */
const NO_VVVV = new Set([
  'movups', 'movupd', 'movaps', 'movapd', 'movdqa', 'movdqu', 'movntps', 'movntpd', 'movntdq', 'movntdqa', 'lddqu',
  'movddup', 'movsldup', 'movshdup', 'sqrtps', 'sqrtpd', 'rsqrtps', 'rcpps', 'cvtdq2ps', 'cvtps2dq', 'cvttps2dq',
  'cvtps2pd', 'cvtpd2ps', 'cvtdq2pd', 'cvtpd2dq', 'cvttpd2dq', 'comiss', 'ucomiss', 'comisd', 'ucomisd', 'movmskps',
  'movmskpd', 'pmovmskb', 'pshufd', 'pshufhw', 'pshuflw', 'ptest', 'pabsb', 'pabsw', 'pabsd', 'phminposuw', 'aesimc',
  'aeskeygenassist', 'roundps', 'roundpd', 'pcmpestri', 'pcmpestrm', 'pcmpestriq', 'pcmpestrmq', 'pcmpistri', 'pcmpistrm', 'extractps', 'pextrb',
  'pextrw', 'pextrd', 'pextrq', 'movd', 'movq', 'maskmovdqu', 'cvttss2si', 'cvttsd2si', 'cvtss2si', 'cvtsd2si',
  'pmovsxbw', 'pmovsxbd', 'pmovsxbq', 'pmovsxwd', 'pmovsxwq', 'pmovsxdq', 'pmovzxbw', 'pmovzxbd', 'pmovzxbq',
  'pmovzxwd', 'pmovzxwq', 'pmovzxdq',
]);
/** SSE instructions with no VEX form. */
const NO_VEX = new Set(['movq2dq', 'movdq2q', 'cvtpi2ps', 'cvtpi2pd', 'cvttps2pi', 'cvtps2pi', 'cvttpd2pi', 'cvtpd2pi',
  'pblendvb', 'blendvps', 'blendvpd', 'sha1nexte', 'sha1msg1', 'sha1msg2', 'sha256rnds2', 'sha256msg1', 'sha256msg2',
  'sha1rnds4', 'hreset', 'movntss', 'movntsd', 'extrq', 'wrssd', 'wrssq', 'wrussd', 'wrussq', 'movdir64b', 'enqcmd', 'enqcmds', 'encodekey128',
  'encodekey256', 'aesenc128kl', 'aesdec128kl', 'aesenc256kl', 'aesdec256kl', 'loadiwkey', 'aesencwide128kl',
  'aesdecwide128kl', 'aesencwide256kl', 'aesdecwide256kl', 'bndldx', 'bndstx', 'bndmov', 'bndcl', 'bndcu', 'bndcn', 'bndmk', 'insertq', 'crc32', 'movbe', 'adcx', 'adox', 'popcnt', 'movdiri', 'aadd', 'aand', 'aor', 'axor',
  'invept', 'invvpid', 'invpcid', 'movnti', 'gf2p8mulb', 'gf2p8affineqb', 'gf2p8affineinvqb', 'pause', 'nop']);
/** Scalar forms: VEX.L is ignored and the registers are XMM. */
const SCALAR = /^(.*ss|.*sd|cvtsi2s[sd]|cvts[sd]2s[sd]|comis[sd]|ucomis[sd]|insertps|pinsr[bwdq]|roundss|roundsd)$/;

/** Packed instructions whose names end like scalar ones. */
const NOT_SCALAR = new Set(['pabsd', 'pminsd', 'pmaxsd']);

function transformLeaf(text: string): Node {
  const sp = text.indexOf(' ');
  if (sp < 0) return '';
  const head = text.slice(0, sp);
  const name = head.split(':')[0]!;
  const flags = head.slice(name.length);
  if (NO_VEX.has(name)) return '';
  const ops = text.slice(sp + 1).split(',');
  if (ops.some((o) => /^[PQN]/.test(o))) return '';
  if (!ops.some((o) => /^[VWU]/.test(o))) return '';
  const scalar = (SCALAR.test(name) && !NOT_SCALAR.has(name)) || name === 'movss' || name === 'movsd';
  const fix = (o: string): string => (scalar && /^[VWUH]x$/.test(o) ? o[0] + 'dq' : o);
  let out = ops.map(fix);
  if (!NO_VVVV.has(name) && /^V/.test(out[0]!)) {
    out = [out[0]!, scalar || /^V(q|dq)$/.test(out[0]!) ? 'Hdq' : 'Hx', ...out.slice(1)];
  } else if (/^U/.test(out[0]!) && out[1] === 'Ib') {
    // shift by immediate: VEX.vvvv is the destination
    out = [scalar ? 'Hdq' : 'Hx', ...out];
  }
  return `v${name}${flags} ${out.join(',')}`;
}

function derive(node: Node, pp: number): Node {
  if (typeof node === 'string') return node === '' ? '' : transformLeaf(node);
  if (node.split === SplitKind.Prefix) return deriveCol(node.e[pp]!);
  if (node.split === SplitKind.Compat) return derive(node.e[0]!, pp);
  return { split: node.split, e: node.e.map((n) => derive(n, pp)) };
}
function deriveCol(node: Node): Node {
  if (typeof node === 'string') return node === '' ? '' : transformLeaf(node);
  if (node.split === SplitKind.Prefix) return '';
  if (node.split === SplitKind.Compat) return deriveCol(node.e[0]!);
  return { split: node.split, e: node.e.map((n) => deriveCol(n)) };
}

/** Derive a VEX map from a legacy map: only slots whose legacy entry is a mandatory-prefix split. */
function deriveMap(legacy: readonly Node[]): Node[] {
  return legacy.map((n) => {
    if (typeof n === 'string' || n.split !== SplitKind.Prefix) return '';
    return pfx(derive(n, 0), derive(n, 1), derive(n, 2), derive(n, 3));
  });
}

function buildVex0F(): Node[] {
  const t = deriveMap(TWO_BYTE_MAP);
  // movss/movsd: register form has the extra source, memory form does not
  t[0x10] = pfx('vmovups Vx,Wx', 'vmovupd Vx,Wx', mod('vmovss Vdq,Md', 'vmovss Vdq,Hdq,Udq'), mod('vmovsd Vdq,Mq', 'vmovsd Vdq,Hdq,Udq'));
  t[0x11] = pfx('vmovups Wx,Vx', 'vmovupd Wx,Vx', mod('vmovss Md,Vdq', 'vmovss Ux,Hdq,Vdq'), mod('vmovsd Mq,Vdq', 'vmovsd Ux,Hdq,Vdq'));
  t[0x12] = pfx(mod('vmovlps Vdq,Hdq,Mq', 'vmovhlps Vdq,Hdq,Udq'), mod('vmovlpd Vdq,Hdq,Mq', ''), 'vmovsldup Vx,Wx', 'vmovddup Vx,Wx');
  t[0x13] = pfx(mod('vmovlps Mq,Vdq', ''), mod('vmovlpd Mq,Vdq', ''));
  t[0x16] = pfx(mod('vmovhps Vdq,Hdq,Mq', 'vmovlhps Vdq,Hdq,Udq'), mod('vmovhpd Vdq,Hdq,Mq', ''), 'vmovshdup Vx,Wx');
  t[0x17] = pfx(mod('vmovhps Mq,Vdq', ''), mod('vmovhpd Mq,Vdq', ''));
  t[0x6e] = pfx('', w64('vmovd Vdq,Ed', 'vmovq Vdq,Eq'));
  t[0x7e] = pfx('', w64('vmovd Ed,Vdq', 'vmovq Eq,Vdq'), 'vmovq Vdq,Wq');
  t[0xd6] = pfx('', 'vmovq Wq,Vdq');
  // (objdump ignores VEX.pp here; a CPU does not)
  t[0x77] = od(pfx(vexl('vzeroupper', 'vzeroall')), vexl('vzeroupper', 'vzeroall'));
  // AVX-512 mask registers (VEX-encoded): moves, logic (VEX.L1, three operands), not/test (VEX.L0)
  t[0x90] = pfx(vexl(rexw('kmovw KG,KEw', 'kmovq KG,KEq'), ''), vexl(rexw('kmovb KG,KEb', 'kmovd KG,KEd'), ''));
  t[0x91] = pfx(vexl(mod(rexw('kmovw KEw,KG', 'kmovq KEq,KG'), ''), ''), vexl(mod(rexw('kmovb KEb,KG', 'kmovd KEd,KG'), ''), ''));
  t[0x92] = vexl(mod('', pfx(rexw('kmovw KG,Rd', ''), rexw('kmovb KG,Rd', ''), '', w64('kmovd KG,Rd', 'kmovq KG,Rq'))), '');
  t[0x93] = vexl(mod('', pfx(rexw('kmovw Gd,KEw', ''), rexw('kmovb Gd,KEw', ''), '', w64('kmovd Gd,KEw', 'kmovq Gq,KEw'))), '');
  for (const [op, name] of [[0x41, 'kand'], [0x42, 'kandn'], [0x45, 'kor'], [0x46, 'kxnor'], [0x47, 'kxor'], [0x4a, 'kadd']] as const) {
    t[op] = vexl('', mod('', maskOp(name, 'KG,KH,KEw')));
  }
  t[0x4b] = vexl('', mod('', pfx(rexw('kunpckwd KG,KH,KEw', 'kunpckdq KG,KH,KEw'), rexw('kunpckbw KG,KH,KEw', ''))));
  t[0x44] = vexl(mod('', maskOp('knot', 'KG,KEw')), '');
  t[0x98] = vexl(mod('', maskOp('kortest', 'KG,KEw')), '');
  t[0x99] = vexl(mod('', maskOp('ktest', 'KG,KEw')), '');
  t[0xc4] = pfx('', 'vpinsrw Vdq,Hdq,Ed,Ib');
  // (a memory operand is objdump's (bad) operand; it resumes after the C4/C5 byte)
  t[0xc5] = pfx('', 'vpextrw Gd,Udq,Ib');
  t[0xf7] = pfx('', 'vmaskmovdqu Vdq,Udq');
  // shift counts are an XMM register or 128-bit memory whatever VEX.L
  for (const [op, name] of [[0xd1, 'vpsrlw'], [0xd2, 'vpsrld'], [0xd3, 'vpsrlq'], [0xe1, 'vpsraw'], [0xe2, 'vpsrad'],
    [0xf1, 'vpsllw'], [0xf2, 'vpslld'], [0xf3, 'vpsllq']] as const) t[op] = pfx('', `${name} Vx,Hx,Wdq`);
  t[0x5a] = pfx('vcvtps2pd Vx,Wdq', 'vcvtpd2ps Vdq,Wx', 'vcvtss2sd Vdq,Hdq,Wd', 'vcvtsd2ss Vdq,Hdq,Wq');
  t[0xe6] = pfx('', 'vcvttpd2dq Vdq,Wx', 'vcvtdq2pd Vx,Wdq', 'vcvtpd2dq Vdq,Wx');
  t[0xae] = pfx(mod(grp('', '', 'vldmxcsr Md', 'vstmxcsr Md', '', '', '', ''), ''));
  return t;
}

function buildVex0F38(): Node[] {
  const t = deriveMap(MAP_0F38);
  t[0x0c] = pfx('', 'vpermilps Vx,Hx,Wx');
  t[0x0d] = pfx('', 'vpermilpd Vx,Hx,Wx');
  t[0x0e] = pfx('', 'vtestps Vx,Wx');
  t[0x0f] = pfx('', 'vtestpd Vx,Wx');
  t[0x13] = pfx('', 'vcvtph2ps Vx,Wdq');
  t[0x16] = pfx('', 'vpermps Vx,Hx,Wx');
  t[0x18] = pfx('', 'vbroadcastss Vx,Wd');
  t[0x19] = pfx('', 'vbroadcastsd Vx,Wq');
  t[0x1a] = pfx('', mod('vbroadcastf128 Vx,Mdq', ''));
  t[0x2c] = pfx('', mod('vmaskmovps Vx,Hx,Mx', ''));
  t[0x2d] = pfx('', mod('vmaskmovpd Vx,Hx,Mx', ''));
  t[0x2e] = pfx('', mod('vmaskmovps Mx,Hx,Vx', ''));
  t[0x2f] = pfx('', mod('vmaskmovpd Mx,Hx,Vx', ''));
  t[0x36] = pfx('', 'vpermd Vx,Hx,Wx');
  t[0x45] = pfx('', rexw('vpsrlvd Vx,Hx,Wx', 'vpsrlvq Vx,Hx,Wx'));
  t[0x46] = pfx('', 'vpsravd Vx,Hx,Wx');
  t[0x47] = pfx('', rexw('vpsllvd Vx,Hx,Wx', 'vpsllvq Vx,Hx,Wx'));
  t[0x58] = pfx('', 'vpbroadcastd Vx,Wd');
  t[0x59] = pfx('', 'vpbroadcastq Vx,Wq');
  t[0x5a] = pfx('', mod('vbroadcasti128 Vx,Mdq', ''));
  t[0x78] = pfx('', 'vpbroadcastb Vx,Wb');
  t[0x79] = pfx('', 'vpbroadcastw Vx,Ww');
  t[0x8c] = pfx('', mod(rexw('vpmaskmovd Vx,Hx,Mx', 'vpmaskmovq Vx,Hx,Mx'), ''));
  t[0x8e] = pfx('', mod(rexw('vpmaskmovd Mx,Hx,Vx', 'vpmaskmovq Mx,Hx,Vx'), ''));
  // FMA: 96-9F, A6-AF, B6-BF (132/213/231 forms)
  const fmaOps = ['fmaddsub', 'fmsubadd', 'fmadd', 'fmadd', 'fmsub', 'fmsub', 'fnmadd', 'fnmadd', 'fnmsub', 'fnmsub'];
  for (const [base, order] of [[0x96, '132'], [0xa6, '213'], [0xb6, '231']] as [number, string][]) {
    for (let i = 0; i < 10; i++) {
      const scalar = i >= 2 && (i & 1) === 1;
      const n = `v${fmaOps[i]}${order}`;
      t[base + i] = pfx('', scalar
        ? rexw(`${n}ss Vdq,Hdq,Wd`, `${n}sd Vdq,Hdq,Wq`)
        : rexw(`${n}ps Vx,Hx,Wx`, `${n}pd Vx,Hx,Wx`));
    }
  }
  // AVX2 gathers (VSIB addressing): [VEX.W0, VEX.W1]
  t[0x90] = pfx('', rexw('vpgatherdd:gather Vx,VSx,Hx', 'vpgatherdq:gather Vx,VSdq,Hx'));
  t[0x91] = pfx('', rexw('vpgatherqd:gather Vdq,VSx,Hdq', 'vpgatherqq:gather Vx,VSx,Hx'));
  t[0x92] = pfx('', rexw('vgatherdps:gather Vx,VSx,Hx', 'vgatherdpd:gather Vx,VSdq,Hx'));
  t[0x93] = pfx('', rexw('vgatherqps:gather Vdq,VSx,Hdq', 'vgatherqpd:gather Vx,VSx,Hx'));
  // AVX-VNNI (66) and AVX-VNNI-INT8 (none/F3/F2); VEX.W0
  t[0x50] = pfx(rexw('vpdpbuud Vx,Hx,Wx', ''), rexw('vpdpbusd:vexpfx Vx,Hx,Wx', ''), rexw('vpdpbsud Vx,Hx,Wx', ''), rexw('vpdpbssd Vx,Hx,Wx', ''));
  t[0x51] = pfx(rexw('vpdpbuuds Vx,Hx,Wx', ''), rexw('vpdpbusds:vexpfx Vx,Hx,Wx', ''), rexw('vpdpbsuds Vx,Hx,Wx', ''), rexw('vpdpbssds Vx,Hx,Wx', ''));
  t[0x52] = pfx('', rexw('vpdpwssd:vexpfx Vx,Hx,Wx', ''));
  t[0x53] = pfx('', rexw('vpdpwssds:vexpfx Vx,Hx,Wx', ''));
  // AVX-IFMA (VEX.W1)
  t[0xb4] = pfx('', rexw('', 'vpmadd52luq:vexpfx Vx,Hx,Wx'));
  t[0xb5] = pfx('', rexw('', 'vpmadd52huq:vexpfx Vx,Hx,Wx'));
  // AVX-NE-CONVERT (VEX.W0)
  t[0x72] = pfx('', '', rexw('vcvtneps2bf16:vexpfx Vdq,Wx', ''));
  t[0xb0] = pfx(rexw('vcvtneoph2ps Vx,Mx', ''), rexw('vcvtneeph2ps Vx,Mx', ''), rexw('vcvtneebf162ps Vx,Mx', ''), rexw('vcvtneobf162ps Vx,Mx', ''));
  t[0xb1] = pfx('', rexw('vbcstnesh2ps Vx,Mw', ''), rexw('vbcstnebf162ps Vx,Mw', ''));
  // GFNI (VEX.W0)
  t[0xcf] = pfx('', rexw('vgf2p8mulb Vx,Hx,Wx', ''));
  // CMPccXADD (long mode; objdump shows VEX.L1 as a (bad) vvvv operand)
  const cc = ['o', 'no', 'b', 'nb', 'z', 'nz', 'be', 'nbe', 's', 'ns', 'p', 'np', 'l', 'nl', 'le', 'nle'];
  for (let i = 0; i < 16; i++) {
    const name = `cmp${cc[i]}xadd:o64`;
    t[0xe0 + i] = m64('', pfx('', vexl(`${name} My,Gy,By`, od('', `${name} My,Gy,BAD`))));
  }
  // BMI1/BMI2
  t[0xf2] = pfx('andn Gy,By,Ey');
  t[0xf3] = pfx(grp('', 'blsr By,Ey', 'blsmsk By,Ey', 'blsi By,Ey', '', '', '', ''));
  t[0xf5] = pfx('bzhi Gy,Ey,By', '', 'pext Gy,By,Ey', 'pdep Gy,By,Ey');
  t[0xf6] = pfx('', '', '', 'mulx Gy,By,Ey');
  t[0xf7] = pfx('bextr Gy,Ey,By', 'shlx Gy,Ey,By', 'sarx Gy,Ey,By', 'shrx Gy,Ey,By');
  return t;
}

function buildVex0F3A(): Node[] {
  const t = deriveMap(MAP_0F3A);
  t[0x00] = pfx('', 'vpermq Vx,Wx,Ib');
  t[0x01] = pfx('', 'vpermpd Vx,Wx,Ib');
  t[0x02] = pfx('', 'vpblendd Vx,Hx,Wx,Ib');
  t[0x04] = pfx('', 'vpermilps Vx,Wx,Ib');
  t[0x05] = pfx('', 'vpermilpd Vx,Wx,Ib');
  t[0x06] = pfx('', 'vperm2f128 Vx,Hx,Wx,Ib');
  t[0x18] = pfx('', 'vinsertf128 Vx,Hx,Wdq,Ib');
  t[0x19] = pfx('', 'vextractf128 Wdq,Vx,Ib');
  t[0x1d] = pfx('', 'vcvtps2ph Wdq,Vx,Ib');
  t[0x38] = pfx('', 'vinserti128 Vx,Hx,Wdq,Ib');
  t[0x39] = pfx('', 'vextracti128 Wdq,Vx,Ib');
  t[0x46] = pfx('', 'vperm2i128 Vx,Hx,Wx,Ib');
  t[0x4a] = pfx('', 'vblendvps Vx,Hx,Wx,Lx');
  t[0x4b] = pfx('', 'vblendvpd Vx,Hx,Wx,Lx');
  t[0x4c] = pfx('', 'vpblendvb Vx,Hx,Wx,Lx');
  t[0xf0] = pfx('', '', '', 'rorx Gy,Ey,Ib');
  // AVX-512 mask shifts (VEX-encoded)
  t[0x30] = pfx('', vexl(mod('', rexw('kshiftrb KG,KEw,Ib', 'kshiftrw KG,KEw,Ib')), ''));
  t[0x31] = pfx('', vexl(mod('', rexw('kshiftrd KG,KEw,Ib', 'kshiftrq KG,KEw,Ib')), ''));
  t[0x32] = pfx('', vexl(mod('', rexw('kshiftlb KG,KEw,Ib', 'kshiftlw KG,KEw,Ib')), ''));
  t[0x33] = pfx('', vexl(mod('', rexw('kshiftld KG,KEw,Ib', 'kshiftlq KG,KEw,Ib')), ''));
  // GFNI (VEX.W1)
  t[0xce] = pfx('', rexw('', 'vgf2p8affineqb Vx,Hx,Wx,Ib'));
  t[0xcf] = pfx('', rexw('', 'vgf2p8affineinvqb Vx,Hx,Wx,Ib'));
  // AMD FMA4 and vpermil2ps/pd (is4 register in imm8[7:4]; VEX.W swaps the r/m and is4 sources)
  const fma4 = (name: string, v: string, w: string): Node =>
    pfx('', rexw(`${name} ${v},H${v.slice(1)},${w},L${v.slice(1)}`, `${name} ${v},H${v.slice(1)},L${v.slice(1)},${w}`));
  const fma4Ops = [[0x5c, 'vfmaddsub'], [0x5e, 'vfmsubadd'], [0x68, 'vfmadd'], [0x6c, 'vfmsub'], [0x78, 'vfnmadd'], [0x7c, 'vfnmsub']] as const;
  for (const [op, name] of fma4Ops) {
    t[op] = fma4(`${name}ps`, 'Vx', 'Wx');
    t[op + 1] = fma4(`${name}pd`, 'Vx', 'Wx');
    if (op >= 0x68) {
      t[op + 2] = fma4(`${name}ss`, 'Vdq', 'Wd');
      t[op + 3] = fma4(`${name}sd`, 'Vdq', 'Wq');
    }
  }
  t[0x48] = pfx('', rexw('vpermil2ps Vx,Hx,Wx,Lx,I4', 'vpermil2ps Vx,Hx,Lx,Wx,I4'));
  t[0x49] = pfx('', rexw('vpermil2pd Vx,Hx,Wx,Lx,I4', 'vpermil2pd Vx,Hx,Lx,Wx,I4'));
  return t;
}

/** VEX.128-only instructions (VEX.L = 1 is #UD). */
const L0_ONLY = new Set(['vmovlps', 'vmovhps', 'vmovlpd', 'vmovhpd', 'vmovhlps', 'vmovlhps', 'vmovd', 'vmovq', 'vpinsrw',
  'vpextrw', 'vpinsrb', 'vpinsrd', 'vpinsrq', 'vpextrb', 'vpextrd', 'vpextrq', 'vextractps', 'vinsertps', 'vmaskmovdqu',
  'vdppd', 'vpcmpestri', 'vpcmpestrm', 'vpcmpestriq', 'vpcmpestrmq', 'vpcmpistri', 'vpcmpistrm',
  'vldmxcsr', 'vstmxcsr', 'vphminposuw', 'vaesimc', 'vaeskeygenassist', 'andn', 'blsr', 'blsmsk', 'blsi', 'bzhi', 'pext',
  'pdep', 'mulx', 'bextr', 'shlx', 'sarx', 'shrx', 'rorx']);
/** VEX.256-only instructions (VEX.L = 0 is #UD). */
const L1_ONLY = new Set(['vperm2f128', 'vperm2i128', 'vinsertf128', 'vextractf128', 'vinserti128', 'vextracti128',
  'vbroadcastsd', 'vbroadcastf128', 'vbroadcasti128', 'vpermq', 'vpermpd', 'vpermd', 'vpermps']);
/** VEX.W0-only instructions (VEX.W = 1 is #UD). */
const W0_ONLY = new Set(['vmaskmovps', 'vmaskmovpd', 'vblendvpd', 'vblendvps', 'vpblendvb', 'vpblendd', 'vbroadcastf128',
  'vbroadcasti128', 'vbroadcastsd', 'vbroadcastss', 'vpbroadcastb', 'vpbroadcastw', 'vpbroadcastd', 'vpbroadcastq',
  'vcvtph2ps', 'vcvtps2ph', 'vextractf128', 'vextracti128', 'vinsertf128', 'vinserti128', 'vperm2f128', 'vperm2i128',
  'vpermd', 'vpermps', 'vpermilpd', 'vpermilps', 'vpsravd', 'vtestpd', 'vtestps', 'vpdpwssd', 'vpdpwssds', 'vpdpbusd',
  'vpdpbusds', 'vgf2p8mulb']);
/** VEX.W1-only instructions (VEX.W = 0 is #UD). */
const W1_ONLY = new Set(['vpermq', 'vpermpd', 'vpmadd52luq', 'vpmadd52huq', 'vgf2p8affineqb', 'vgf2p8affineinvqb']);

/** Applies the VEX.L / VEX.W restrictions to every leaf of a VEX map node. */
function restrict(node: Node): Node {
  if (typeof node !== 'string') return { ...node, e: node.e.map(restrict) };
  if (node === '' || node === '!') return node;
  const name = node.split(/[ :]/)[0]!;
  let n: Node = node;
  if (W0_ONLY.has(name)) n = rexw(n, '');
  if (W1_ONLY.has(name)) n = rexw('', n);
  if (L0_ONLY.has(name)) n = vexl(n, '');
  if (L1_ONLY.has(name)) n = vexl('', n);
  return n;
}

/**
 * A VEX slot that defines an instruction for some VEX.pp is, for objdump, one instruction with a prefix
 * requirement: its other VEX.pp columns are `'!'` holes (a bare `(bad)`).
 */
function finishMap(t: Node[], named: Readonly<Record<number, readonly number[]>>): Node[] {
  const bare = (r: Node, top: readonly number[] | null): Node => {
    if (typeof r === 'string') return r;
    if (r.split !== SplitKind.Prefix) return { ...r, e: r.e.map((c) => bare(c, null)) };
    if (r.e.every(isEmpty)) return r;
    const hole = top ? restrictedHole(r.e) : '!';
    return { ...r, e: r.e.map((c, i) => (isEmpty(c) ? (top?.includes(i) ? '' : hole) : bare(c, null))) };
  };
  return t.map((n, op) => bare(restrict(n), named[op] ?? []));
}

/** A node without any instruction under it. */
function isEmpty(n: Node): boolean {
  return typeof n === 'string' ? n === '' || n === '!' : n.e.every(isEmpty);
}

/**
 * VEX.pp columns (0 none, 1 66, 2 F3, 3 F2) of slots where a wrong VEX.pp is a hole objdump names the
 * prefixes for (objdump has no prefix table there), per map and opcode; elsewhere a wrong VEX.pp is a
 * bare `(bad)`. Observed with objdump 2.40 over the whole VEX space.
 */
const NAMED_PP_HOLES: readonly Readonly<Record<number, readonly number[]>>[] = [
  {},
  {
    0x16: [3], 0x2a: [0, 1], 0x2c: [0, 1], 0x2d: [0, 1], 0x2e: [2, 3], 0x2f: [2, 3], 0x52: [1, 3], 0x53: [1, 3],
    0x5b: [3], 0x6f: [0, 3], 0x70: [0], 0x7c: [0, 2], 0x7d: [0, 2], 0x7e: [0, 3], 0x7f: [0, 3], 0x90: [2, 3],
    0x91: [2, 3], 0xae: [1, 2, 3], 0xd0: [0, 2], 0xe6: [0], 0xf0: [0, 1, 2],
  },
  { 0x72: [0, 1, 3], 0xb1: [0, 3], 0xf3: [1, 2, 3], 0xf5: [1], 0xf6: [0, 1, 2] },
  { 0x30: [0, 2, 3], 0x31: [0, 2, 3], 0x32: [0, 2, 3], 0x33: [0, 2, 3], 0xf0: [0, 1, 2] },
];

function leafNames(n: Node, out: Set<string>): Set<string> {
  if (typeof n === 'string') {
    if (n !== '' && n !== '!') out.add(n.split(/[ :]/)[0]!);
  } else for (const c of n.e) leafNames(c, out);
  return out;
}

/**
 * objdump checks a VEX.W / VEX.L restriction before VEX.pp: a wrong VEX.pp is a bare `(bad)` only if
 * VEX.W and VEX.L suit an instruction of the slot; otherwise the prefixes are named (a `''` hole).
 */
function restrictedHole(cols: readonly Node[]): Node {
  const names = new Set<string>();
  for (const c of cols) leafNames(c, names);
  let w0 = false;
  let w1 = false;
  let l0 = false;
  let l1 = false;
  for (const n of names) {
    if (!W1_ONLY.has(n)) w0 = true;
    if (!W0_ONLY.has(n)) w1 = true;
    if (!L1_ONLY.has(n)) l0 = true;
    if (!L0_ONLY.has(n)) l1 = true;
  }
  let h: Node = '!';
  if (!l0 || !l1) h = vexl(l0 ? h : '', l1 ? h : '');
  if (!w0 || !w1) h = rexw(w0 ? h : '', w1 ? h : '');
  return h;
}

export const VEX_MAPS: readonly (readonly Node[])[] = [
  new Array<Node>(256).fill(''), finishMap(buildVex0F(), NAMED_PP_HOLES[1]!), finishMap(buildVex0F38(), NAMED_PP_HOLES[2]!),
  finishMap(buildVex0F3A(), NAMED_PP_HOLES[3]!),
];
