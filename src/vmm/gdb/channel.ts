/**
 * The debugger's line to one vCPU's thread: shared memory, so that the vCPU's thread can take
 * requests while its own event loop is blocked (it is either in run() or waiting, paused, in
 * Atomics.wait), and the stub's thread waits for answers without blocking (Atomics.waitAsync).
 *
 * Three mailboxes, each a sequence word, a length word and an area of JSON (bigints and bytes as
 * hex): commands (stub -> vCPU), replies (vCPU -> stub, one per command) and stop events (vCPU ->
 * stub). Besides them: STOP_REQ (the stub asks a running vCPU to pause; it kicks the vCPU too),
 * PAUSED (the vCPU is paused and serves commands) and WAIT_AT_START (pause before the first
 * instruction, QEMU's -S). A message larger than its area is refused where it is written.
 */
import { TsvmmError } from '../../common/errors.js';

export const WORD = {
  CMD_SEQ: 0, CMD_LEN: 1, REPLY_SEQ: 2, REPLY_LEN: 3, EVENT_SEQ: 4, EVENT_LEN: 5,
  STOP_REQ: 6, PAUSED: 7, WAIT_AT_START: 8,
} as const;
const WORDS_BYTES = 64;
const CMD_BYTES = 32 * 1024;
const REPLY_BYTES = 32 * 1024;
const EVENT_BYTES = 4 * 1024;
const CMD_AT = WORDS_BYTES, REPLY_AT = CMD_AT + CMD_BYTES, EVENT_AT = REPLY_AT + REPLY_BYTES;
const TOTAL = EVENT_AT + EVENT_BYTES;

/** The shared memory of one vCPU's line (structured-cloneable: post it to the vCPU's thread). */
export function newDebugChannel(): SharedArrayBuffer {
  return new SharedArrayBuffer(TOTAL);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encode(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value, (_k, v: unknown) => {
    if (typeof v === 'bigint') return { $big: v.toString(16) };
    if (v instanceof Uint8Array) return { $bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') };
    return v;
  }));
}

function decode<T>(bytes: Uint8Array): T {
  return JSON.parse(decoder.decode(bytes), (_k, v: unknown) => {
    if (v !== null && typeof v === 'object') {
      const o = v as { $big?: string; $bytes?: string };
      if (typeof o.$big === 'string') return BigInt(`0x${o.$big}`);
      if (typeof o.$bytes === 'string') return Uint8Array.from(Buffer.from(o.$bytes, 'hex'));
    }
    return v;
  }) as T;
}

/** One side's view of a line: the words and the three areas. */
export class DebugChannel {
  readonly buffer: SharedArrayBuffer;
  readonly words: Int32Array;
  private readonly bytes: Uint8Array;

  constructor(buffer: SharedArrayBuffer) {
    if (buffer.byteLength !== TOTAL) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `a debug channel has ${TOTAL} bytes, not ${buffer.byteLength}`);
    this.buffer = buffer;
    this.words = new Int32Array(buffer, 0, WORDS_BYTES / 4);
    this.bytes = new Uint8Array(buffer);
  }

  private put(at: number, size: number, seqWord: number, lenWord: number, value: unknown): void {
    const b = encode(value);
    if (b.length > size) throw new TsvmmError('TSVMM_LIMIT', `debug message of ${b.length} bytes (at most ${size})`);
    this.bytes.set(b, at);
    Atomics.store(this.words, lenWord, b.length);
    Atomics.add(this.words, seqWord, 1);
    Atomics.notify(this.words, seqWord);
  }

  private get<T>(at: number, lenWord: number): T {
    const len = Atomics.load(this.words, lenWord);
    return decode<T>(this.bytes.slice(at, at + len));
  }

  sendCommand(value: unknown): void {
    this.put(CMD_AT, CMD_BYTES, WORD.CMD_SEQ, WORD.CMD_LEN, value);
  }
  command<T>(): T {
    return this.get<T>(CMD_AT, WORD.CMD_LEN);
  }
  sendReply(value: unknown): void {
    this.put(REPLY_AT, REPLY_BYTES, WORD.REPLY_SEQ, WORD.REPLY_LEN, value);
  }
  reply<T>(): T {
    return this.get<T>(REPLY_AT, WORD.REPLY_LEN);
  }
  sendEvent(value: unknown): void {
    this.put(EVENT_AT, EVENT_BYTES, WORD.EVENT_SEQ, WORD.EVENT_LEN, value);
  }
  event<T>(): T {
    return this.get<T>(EVENT_AT, WORD.EVENT_LEN);
  }

  load(word: number): number {
    return Atomics.load(this.words, word);
  }
  store(word: number, value: number): void {
    Atomics.store(this.words, word, value);
    Atomics.notify(this.words, word);
  }

  /** Resolves once `word` is no longer `value` (the stub's side: never blocks its thread). */
  async changed(word: number, value: number): Promise<void> {
    while (Atomics.load(this.words, word) === value) {
      const w = Atomics.waitAsync(this.words, word, value);
      if (w.async) await w.value;
    }
  }
}
