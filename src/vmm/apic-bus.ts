/**
 * The APIC bus between vCPU threads of the software CPU (SMP on the soft backend): each vCPU's
 * local APIC lives in that vCPU's thread, and interrupt messages (IPIs from any local APIC, the
 * I/O APIC's messages from the boot thread) reach APICs in other threads through shared memory.
 *
 * One slot of shared words per vCPU holds what the senders need and what they leave:
 * - its APIC's addressing identity (APIC ID, hardware enable, LDR, DFR), published by the owner
 *   thread whenever it may have changed (publish), so that any thread decides who a message is for
 *   with LocalApic.isTarget's rule without asking the owner;
 * - an inbox: fixed interrupts as IRR request bits (with their trigger mode), an NMI count,
 *   INIT, and the last start-up vector. Fixed interrupts coalesce as in a real IRR, so the inbox
 *   never overflows, whatever a guest sends. A sender sets PENDING and wakes the target if it
 *   sleeps (Atomics.notify on its stop word, where a halted soft vCPU waits); NMI, INIT and SIPI
 *   also stop the target's run loop (stopVcpu), which takes them even with interrupts disabled.
 *   Fixed interrupts are taken when the target's run loop asks its APIC for an interrupt (at
 *   block boundaries with RFLAGS.IF set: InlineDevices.interruptPending), which drains the inbox.
 *
 * Delivery into the target's LocalApic (drain) runs in the target's thread, so LocalApic itself
 * stays single-threaded. Lowest priority goes to the first APIC that matches, as deliverToApics does.
 */
import type { StopHandle } from '../nvmm/backend.js';
import { STOP_WORD, stopVcpu } from '../nvmm/stop.js';
import { x2apicTarget, type ApicMessage, type LocalApic } from '../devices/local-apic.js';
import { APIC_BROADCAST, APIC_DFR, APIC_LDR, DFR_FLAT } from '../x86/apic.js';

const W_IDENT = 0; // APIC ID in bits 7-0, bit 8: hardware enabled, bit 9: x2APIC mode
const W_LDR = 1;
const W_DFR = 2;
const W_PENDING = 3;
const W_NMI = 4;
const W_INIT = 5;
const W_SIPI = 6; // start-up vector + 1, 0: none
const W_IRR = 8; // 8 words
const W_TMR = 16; // 8 words: the trigger (level) of each requested vector
const SLOT_WORDS = 24;
const IDENT_ENABLED = 0x100;
const IDENT_X2APIC = 0x200;

/** The shared words of a bus for `cpus` vCPUs (give the same buffer to every thread). */
export function newApicBus(cpus: number): SharedArrayBuffer {
  return new SharedArrayBuffer(cpus * SLOT_WORDS * 4);
}

export class ApicBus {
  private readonly w: Int32Array;
  private readonly stops: Int32Array[];
  private readonly reg = new Uint8Array(4);

  /** `stopHandles`: each vCPU's, by index (the index is the vCPU id and its slot). */
  constructor(buffer: SharedArrayBuffer, private readonly stopHandles: readonly StopHandle[]) {
    this.w = new Int32Array(buffer);
    this.stops = stopHandles.map((h) => new Int32Array(h.flag));
  }

  get cpus(): number {
    return this.stopHandles.length;
  }

  /** Publishes vCPU `index`'s APIC identity (after a write that may change it: ID, LDR, DFR, the base MSR, INIT). */
  publish(index: number, apic: LocalApic): void {
    const b = index * SLOT_WORDS;
    const r = this.reg;
    apic.read(APIC_LDR, r);
    const ldr = (r[0]! | (r[1]! << 8) | (r[2]! << 16) | (r[3]! << 24)) | 0;
    apic.read(APIC_DFR, r);
    const dfr = (r[0]! | (r[1]! << 8) | (r[2]! << 16) | (r[3]! << 24)) | 0;
    Atomics.store(this.w, b + W_LDR, ldr);
    Atomics.store(this.w, b + W_DFR, dfr);
    Atomics.store(this.w, b + W_IDENT, (apic.id & 0xff) | (apic.hardwareEnabled ? IDENT_ENABLED : 0) | (apic.x2apicMode ? IDENT_X2APIC : 0));
  }

  /** LocalApic.isTarget, from vCPU `index`'s published identity. */
  isTarget(index: number, msg: ApicMessage): boolean {
    const b = index * SLOT_WORDS;
    const ident = Atomics.load(this.w, b + W_IDENT);
    if (!(ident & IDENT_ENABLED)) return false;
    const id = ident & 0xff;
    switch (msg.shorthand) {
      case 'self': return msg.source === id;
      case 'all': return true;
      case 'allButSelf': return msg.source !== id;
      case 'none': break;
    }
    if (ident & IDENT_X2APIC) return x2apicTarget(id, msg);
    const dest = msg.destination & 0xff;
    if (msg.destMode === 'physical') return dest === APIC_BROADCAST || dest === id;
    if (dest === APIC_BROADCAST) return true;
    const logicalId = Atomics.load(this.w, b + W_LDR) >>> 24;
    if (Atomics.load(this.w, b + W_DFR) >>> 28 === DFR_FLAT) return (logicalId & dest) !== 0;
    return (dest >> 4) === (logicalId >> 4) && (dest & logicalId & 0xf) !== 0;
  }

  /**
   * Delivers `msg` to the APICs it addresses. `local`: the calling thread's own vCPU index and
   * APIC, which receives at once; every other target gets it in its inbox.
   */
  deliver(msg: ApicMessage, local?: { index: number; apic: LocalApic }): void {
    for (let i = 0; i < this.stopHandles.length; i++) {
      if (!this.isTarget(i, msg)) continue;
      if (local !== undefined && i === local.index) local.apic.receive(msg);
      else this.post(i, msg);
      if (msg.mode === 'lowestPriority') return;
    }
  }

  /** Leaves `msg` in vCPU `index`'s inbox and wakes it. */
  private post(index: number, msg: ApicMessage): void {
    const b = index * SLOT_WORDS, w = this.w;
    let stop = false;
    switch (msg.mode) {
      case 'fixed':
      case 'lowestPriority': {
        const v = msg.vector & 0xff, word = v >>> 5, bit = 1 << (v & 31);
        if (msg.trigger === 'level') Atomics.or(w, b + W_TMR + word, bit);
        else Atomics.and(w, b + W_TMR + word, ~bit);
        Atomics.or(w, b + W_IRR + word, bit);
        break;
      }
      case 'nmi':
        Atomics.add(w, b + W_NMI, 1);
        stop = true;
        break;
      case 'init':
        if (msg.trigger === 'level' && !msg.level) return; // de-assert: no effect
        Atomics.store(w, b + W_INIT, 1);
        Atomics.store(w, b + W_SIPI, 0);
        stop = true;
        break;
      case 'startup':
        Atomics.store(w, b + W_SIPI, (msg.vector & 0xff) + 1);
        stop = true;
        break;
      case 'extInt': case 'smi':
        return; // the 8259 is the boot vCPU's; no SMM
    }
    Atomics.store(w, b + W_PENDING, 1);
    if (stop) stopVcpu(this.stopHandles[index]!);
    else Atomics.notify(this.stops[index]!, STOP_WORD.STOP);
  }

  /** Whether vCPU `index` has messages waiting (cheap: one load). */
  pending(index: number): boolean {
    return Atomics.load(this.w, index * SLOT_WORDS + W_PENDING) !== 0;
  }

  /** Takes vCPU `index`'s inbox into its APIC (in its own thread); INIT first, then start-up, NMIs, fixed interrupts. */
  drain(index: number, apic: LocalApic): void {
    const b = index * SLOT_WORDS, w = this.w;
    if (Atomics.exchange(w, b + W_PENDING, 0) === 0) return;
    const base = { source: -1, destination: 0, destMode: 'physical', shorthand: 'none', level: true, vector: 0 } as const;
    if (Atomics.exchange(w, b + W_INIT, 0) !== 0) {
      apic.receive({ ...base, mode: 'init', trigger: 'edge' });
      this.publish(index, apic);
    }
    const sipi = Atomics.exchange(w, b + W_SIPI, 0);
    if (sipi !== 0) apic.receive({ ...base, mode: 'startup', vector: sipi - 1, trigger: 'edge' });
    for (let n = Atomics.exchange(w, b + W_NMI, 0); n > 0; n--) apic.receive({ ...base, mode: 'nmi', trigger: 'edge' });
    for (let k = 0; k < 8; k++) {
      let bits = Atomics.exchange(w, b + W_IRR + k, 0);
      if (bits === 0) continue;
      const levels = Atomics.load(w, b + W_TMR + k);
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits);
        bits &= ~(1 << bit);
        apic.receive({ ...base, mode: 'fixed', vector: k * 32 + bit, trigger: levels & (1 << bit) ? 'level' : 'edge' });
      }
    }
  }
}

