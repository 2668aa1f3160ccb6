/**
 * VEX-encoded opcode maps (index = VEX.mmmmm: 1 = 0F, 2 = 0F38, 3 = 0F3A; 0 unused).
 * Same notation as opcode-tables.ts; the mandatory-prefix split uses VEX.pp.
 *
 * Most AVX forms are the SSE forms with a `v` and, for the non-destructive-source ones, the extra
 * VEX.vvvv operand (H) after the destination; they are derived from the legacy tables here
 * (data transformed once at load), plus the VEX-only instructions listed explicitly.
 */
import { MAP_0F38, MAP_0F3A, SplitKind, tableHelpers, TWO_BYTE_MAP, type Node, type Split } from './opcode-tables.js';

const { pfx, mod, rexw, vexl, grp } = tableHelpers;

/** SSE instructions whose VEX form has no VEX.vvvv source (VEX.vvvv must be 1111). */
const NO_VVVV = new Set([
  'movups', 'movupd', 'movaps', 'movapd', 'movdqa', 'movdqu', 'movntps', 'movntpd', 'movntdq', 'movntdqa', 'lddqu',
  'movddup', 'movsldup', 'movshdup', 'sqrtps', 'sqrtpd', 'rsqrtps', 'rcpps', 'cvtdq2ps', 'cvtps2dq', 'cvttps2dq',
  'cvtps2pd', 'cvtpd2ps', 'cvtdq2pd', 'cvtpd2dq', 'cvttpd2dq', 'comiss', 'ucomiss', 'comisd', 'ucomisd', 'movmskps',
  'movmskpd', 'pmovmskb', 'pshufd', 'pshufhw', 'pshuflw', 'ptest', 'pabsb', 'pabsw', 'pabsd', 'phminposuw', 'aesimc',
  'aeskeygenassist', 'roundps', 'roundpd', 'pcmpestri', 'pcmpestrm', 'pcmpistri', 'pcmpistrm', 'extractps', 'pextrb',
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
  const scalar = SCALAR.test(name) || name === 'movss' || name === 'movsd';
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
  t[0x11] = pfx('vmovups Wx,Vx', 'vmovupd Wx,Vx', mod('vmovss Md,Vdq', 'vmovss Udq,Hdq,Vdq'), mod('vmovsd Mq,Vdq', 'vmovsd Udq,Hdq,Vdq'));
  t[0x12] = pfx(mod('vmovlps Vdq,Hdq,Mq', 'vmovhlps Vdq,Hdq,Udq'), mod('vmovlpd Vdq,Hdq,Mq', ''), 'vmovsldup Vx,Wx', 'vmovddup Vx,Wx');
  t[0x13] = pfx(mod('vmovlps Mq,Vdq', ''), mod('vmovlpd Mq,Vdq', ''));
  t[0x16] = pfx(mod('vmovhps Vdq,Hdq,Mq', 'vmovlhps Vdq,Hdq,Udq'), mod('vmovhpd Vdq,Hdq,Mq', ''), 'vmovshdup Vx,Wx');
  t[0x17] = pfx(mod('vmovhps Mq,Vdq', ''), mod('vmovhpd Mq,Vdq', ''));
  t[0x6e] = pfx('', rexw('vmovd Vdq,Ed', 'vmovq Vdq,Eq'));
  t[0x7e] = pfx('', rexw('vmovd Ed,Vdq', 'vmovq Eq,Vdq'), 'vmovq Vdq,Wq');
  t[0xd6] = pfx('', 'vmovq Wq,Vdq');
  t[0x77] = pfx(vexl('vzeroupper', 'vzeroall'));
  t[0xc4] = pfx('', 'vpinsrw Vdq,Hdq,Ed,Ib');
  t[0xc5] = pfx('', mod('', 'vpextrw Gd,Udq,Ib'));
  t[0xf7] = pfx('', mod('', 'vmaskmovdqu Vdq,Udq'));
  t[0x5a] = pfx('vcvtps2pd Vx,Wx', 'vcvtpd2ps Vdq,Wx', 'vcvtss2sd Vdq,Hdq,Wd', 'vcvtsd2ss Vdq,Hdq,Wq');
  t[0xe6] = pfx('', 'vcvttpd2dq Vdq,Wx', 'vcvtdq2pd Vx,Wx', 'vcvtpd2dq Vdq,Wx');
  t[0xae] = pfx(mod(grp('', '', 'vldmxcsr Md', 'vstmxcsr Md', '', '', '', ''), ''));
  return t;
}

function buildVex0F38(): Node[] {
  const t = deriveMap(MAP_0F38);
  t[0x0c] = pfx('', 'vpermilps Vx,Hx,Wx');
  t[0x0d] = pfx('', 'vpermilpd Vx,Hx,Wx');
  t[0x0e] = pfx('', 'vtestps Vx,Wx');
  t[0x0f] = pfx('', 'vtestpd Vx,Wx');
  t[0x13] = pfx('', 'vcvtph2ps Vx,Wx');
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
  t[0x1d] = pfx('', 'vcvtps2ph Wx,Vx,Ib');
  t[0x38] = pfx('', 'vinserti128 Vx,Hx,Wdq,Ib');
  t[0x39] = pfx('', 'vextracti128 Wdq,Vx,Ib');
  t[0x46] = pfx('', 'vperm2i128 Vx,Hx,Wx,Ib');
  t[0x4a] = pfx('', 'vblendvps Vx,Hx,Wx,Lx');
  t[0x4b] = pfx('', 'vblendvpd Vx,Hx,Wx,Lx');
  t[0x4c] = pfx('', 'vpblendvb Vx,Hx,Wx,Lx');
  t[0xf0] = pfx('', '', '', 'rorx Gy,Ey,Ib');
  return t;
}

/** VEX.128-only instructions (VEX.L = 1 is #UD). */
const L0_ONLY = new Set(['vmovlps', 'vmovhps', 'vmovlpd', 'vmovhpd', 'vmovhlps', 'vmovlhps', 'vmovd', 'vmovq', 'vpinsrw',
  'vpextrw', 'vpinsrb', 'vpinsrd', 'vpinsrq', 'vpextrb', 'vpextrd', 'vpextrq', 'vextractps', 'vinsertps', 'vmaskmovdqu',
  'vldmxcsr', 'vstmxcsr', 'vphminposuw', 'vaesimc', 'vaeskeygenassist', 'andn', 'blsr', 'blsmsk', 'blsi', 'bzhi', 'pext',
  'pdep', 'mulx', 'bextr', 'shlx', 'sarx', 'shrx', 'rorx']);
/** VEX.256-only instructions (VEX.L = 0 is #UD). */
const L1_ONLY = new Set(['vperm2f128', 'vperm2i128', 'vinsertf128', 'vextractf128', 'vinserti128', 'vextracti128',
  'vbroadcastsd', 'vbroadcastf128', 'vbroadcasti128', 'vpermq', 'vpermpd', 'vpermd', 'vpermps']);
/** VEX.W0-only instructions (VEX.W = 1 is #UD). */
const W0_ONLY = new Set(['vmaskmovps', 'vmaskmovpd']);

/** Applies the VEX.L / VEX.W restrictions to every leaf of a VEX map node. */
function restrict(node: Node): Node {
  if (typeof node !== 'string') return { ...node, e: node.e.map(restrict) };
  if (node === '' || node === '!') return node;
  const name = node.split(/[ :]/)[0]!;
  let n: Node = node;
  if (W0_ONLY.has(name)) n = rexw(n, '');
  if (L0_ONLY.has(name)) n = vexl(n, '');
  if (L1_ONLY.has(name)) n = vexl('', n);
  return n;
}

/**
 * A VEX slot that defines an instruction for some VEX.pp is, for objdump, one instruction with a prefix
 * requirement: its other VEX.pp columns are `'!'` holes (a bare `(bad)`).
 */
function finishMap(t: Node[]): Node[] {
  return t.map((n) => {
    const r = restrict(n);
    if (typeof r === 'string' || r.split !== SplitKind.Prefix || r.e.every((c) => c === '' || c === '!')) return r;
    return { ...r, e: r.e.map((c) => (c === '' ? '!' : c)) };
  });
}

export const VEX_MAPS: readonly (readonly Node[])[] = [
  new Array<Node>(256).fill(''), finishMap(buildVex0F()), finishMap(buildVex0F38()), finishMap(buildVex0F3A()),
];

export type { Split };
