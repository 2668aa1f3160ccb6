/**
 * VEX-encoded opcode maps (index = VEX.mmmmm: 1 = 0F, 2 = 0F38, 3 = 0F3A; 0 unused).
 * Same notation as opcode-tables.ts; the mandatory-prefix split uses VEX.pp.
 */
import type { Node } from './opcode-tables.js';

function emptyMap(): Node[] {
  return new Array<Node>(256).fill('');
}

export const VEX_MAPS: readonly (readonly Node[])[] = [emptyMap(), emptyMap(), emptyMap(), emptyMap()];
