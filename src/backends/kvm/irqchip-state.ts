/**
 * The in-kernel irqchip's and PIT's state as KVM's ioctls carry it (KVM_GET/SET_IRQCHIP,
 * KVM_GET/SET_PIT2, KVM_GET/SET_LAPIC): the kernel structs' bytes (abi.ts, checked against
 * <linux/kvm.h>) to the named records of nvmm/irqchip-state.ts and back. Nothing is checked here
 * but the sizes: whether the values fit the board's devices is the translation's business
 * (vmm/irqchip-translation.ts), which refuses what they cannot carry.
 */
import { TsvmmError } from '../../common/errors.js';
import type { KernelIoapicState, KernelPicState, KernelPitChannel, KernelPitState } from '../../nvmm/irqchip-state.js';
import * as abi from './abi.js';

function sized(what: string, b: Uint8Array, size: number): DataView {
  if (b.length < size) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `${what}: ${b.length} bytes, not ${size}`);
  return new DataView(b.buffer, b.byteOffset, size);
}

/** struct kvm_pic_state's fields that are flags (one byte each, any non-zero value is set). */
const PIC_FLAGS = ['readRegSelect', 'poll', 'specialMask', 'autoEoi', 'rotateOnAutoEoi', 'specialFullyNestedMode', 'init4'] as const;
/** Record field → struct field, for kvm_pic_state. */
const PIC_FIELDS: Record<keyof KernelPicState, keyof typeof abi.KVM_PIC_STATE> = {
  lastIrr: 'last_irr', irr: 'irr', imr: 'imr', isr: 'isr', priorityAdd: 'priority_add', irqBase: 'irq_base',
  readRegSelect: 'read_reg_select', poll: 'poll', specialMask: 'special_mask', initState: 'init_state', autoEoi: 'auto_eoi',
  rotateOnAutoEoi: 'rotate_on_auto_eoi', specialFullyNestedMode: 'special_fully_nested_mode', init4: 'init4', elcr: 'elcr', elcrMask: 'elcr_mask',
};

export function decodePic(b: Uint8Array): KernelPicState {
  const d = sized('kvm_pic_state', b, abi.KVM_PIC_STATE.size);
  const out = {} as Record<keyof KernelPicState, number | boolean>;
  for (const [field, c] of Object.entries(PIC_FIELDS) as [keyof KernelPicState, keyof typeof abi.KVM_PIC_STATE][]) {
    const v = d.getUint8(abi.KVM_PIC_STATE[c]);
    out[field] = (PIC_FLAGS as readonly string[]).includes(field) ? v !== 0 : v;
  }
  return out as unknown as KernelPicState;
}

export function encodePic(s: KernelPicState): Uint8Array {
  const b = new Uint8Array(abi.KVM_PIC_STATE.size);
  for (const [field, c] of Object.entries(PIC_FIELDS) as [keyof KernelPicState, keyof typeof abi.KVM_PIC_STATE][]) {
    const v = s[field];
    b[abi.KVM_PIC_STATE[c]] = typeof v === 'boolean' ? (v ? 1 : 0) : v & 0xff;
  }
  return b;
}

export function decodeIoapic(b: Uint8Array): KernelIoapicState {
  const I = abi.KVM_IOAPIC_STATE;
  const d = sized('kvm_ioapic_state', b, I.size);
  return {
    baseAddress: Number(d.getBigUint64(I.base_address, true)),
    ioregsel: d.getUint32(I.ioregsel, true),
    id: d.getUint32(I.id, true),
    irr: d.getUint32(I.irr, true),
    redirtbl: Array.from({ length: abi.KVM_IOAPIC_NUM_PINS }, (_, i) => d.getBigUint64(I.redirtbl + 8 * i, true)),
  };
}

export function encodeIoapic(s: KernelIoapicState): Uint8Array {
  const I = abi.KVM_IOAPIC_STATE;
  const b = new Uint8Array(I.size);
  const d = new DataView(b.buffer);
  d.setBigUint64(I.base_address, BigInt(s.baseAddress), true);
  d.setUint32(I.ioregsel, s.ioregsel >>> 0, true);
  d.setUint32(I.id, s.id >>> 0, true);
  d.setUint32(I.irr, s.irr >>> 0, true);
  for (let i = 0; i < abi.KVM_IOAPIC_NUM_PINS; i++) d.setBigUint64(I.redirtbl + 8 * i, BigInt.asUintN(64, s.redirtbl[i] ?? 0n), true);
  return b;
}

export function decodePit(b: Uint8Array): KernelPitState {
  const P = abi.KVM_PIT_STATE2;
  const C = abi.KVM_PIT_CHANNEL_STATE;
  const d = sized('kvm_pit_state2', b, P.size);
  const channel = (o: number): KernelPitChannel => ({
    count: d.getUint32(o + C.count, true),
    latchedCount: d.getUint16(o + C.latched_count, true),
    countLatched: d.getUint8(o + C.count_latched),
    statusLatched: d.getUint8(o + C.status_latched) !== 0,
    status: d.getUint8(o + C.status),
    readState: d.getUint8(o + C.read_state),
    writeState: d.getUint8(o + C.write_state),
    writeLatch: d.getUint8(o + C.write_latch),
    rwMode: d.getUint8(o + C.rw_mode),
    mode: d.getUint8(o + C.mode),
    bcd: d.getUint8(o + C.bcd) !== 0,
    gate: d.getUint8(o + C.gate) !== 0,
    countLoadTime: d.getBigInt64(o + C.count_load_time, true),
  });
  return { channels: [0, 1, 2].map((i) => channel(P.channels + i * C.size)), flags: d.getUint32(P.flags, true) };
}

export function encodePit(s: KernelPitState): Uint8Array {
  const P = abi.KVM_PIT_STATE2;
  const C = abi.KVM_PIT_CHANNEL_STATE;
  const b = new Uint8Array(P.size);
  const d = new DataView(b.buffer);
  s.channels.slice(0, 3).forEach((c, i) => {
    const o = P.channels + i * C.size;
    d.setUint32(o + C.count, c.count >>> 0, true);
    d.setUint16(o + C.latched_count, c.latchedCount & 0xffff, true);
    d.setUint8(o + C.count_latched, c.countLatched & 0xff);
    d.setUint8(o + C.status_latched, c.statusLatched ? 1 : 0);
    d.setUint8(o + C.status, c.status & 0xff);
    d.setUint8(o + C.read_state, c.readState & 0xff);
    d.setUint8(o + C.write_state, c.writeState & 0xff);
    d.setUint8(o + C.write_latch, c.writeLatch & 0xff);
    d.setUint8(o + C.rw_mode, c.rwMode & 0xff);
    d.setUint8(o + C.mode, c.mode & 0xff);
    d.setUint8(o + C.bcd, c.bcd ? 1 : 0);
    d.setUint8(o + C.gate, c.gate ? 1 : 0);
    d.setBigInt64(o + C.count_load_time, BigInt.asIntN(64, c.countLoadTime), true);
  });
  d.setUint32(P.flags, s.flags >>> 0, true);
  return b;
}

/** A struct kvm_irqchip for chip `chipId` holding `state` (or empty, to read it with KVM_GET_IRQCHIP). */
export function irqchipBuffer(chipId: number, state?: Uint8Array): Uint8Array {
  const b = new Uint8Array(abi.KVM_IRQCHIP.size);
  new DataView(b.buffer).setUint32(abi.KVM_IRQCHIP.chip_id, chipId, true);
  if (state) b.set(state, abi.KVM_IRQCHIP.chip);
  return b;
}

/** The chip's state in a struct kvm_irqchip. */
export function irqchipPayload(b: Uint8Array): Uint8Array {
  return b.subarray(abi.KVM_IRQCHIP.chip);
}
