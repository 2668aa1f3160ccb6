/**
 * The host side of the guest's exec agent (guests/agent/tsvmm-agent.sh, a busybox shell script
 * that `tsvmm initramfs` puts in every initramfs): runs a shell command in the guest and returns
 * its stdout, stderr and exit status, over one byte channel (the virtio-console port named
 * AGENT_PORT_NAME, or any duplex stream). The framing is docs/agent-protocol.md:
 *
 *   agent -> host, when it starts:  tsvmm-agent 1\n
 *   host -> agent:   E <id> <timeout-ms> <max-bytes> <base64 command>\n
 *   agent -> host:   R <id> <status> <out-size> <err-size> <out-sent> <err-sent>\n <out-sent + err-sent raw bytes>
 *                    F <id> <reason>\n
 *
 * Execs run one at a time in call order; each waits for the agent's hello first. Everything the
 * guest sends is untrusted and bounded: a header line is at most AGENT_MAX_HEADER_BYTES, a reply
 * carries at most the exec's maxOutputBytes per stream (the agent sends no more; a claim of more is
 * a protocol error), and every exec settles by timeoutMs + replyGraceMs after it was called:
 *   - TSVMM_TIMEOUT: the agent killed the command at its timeout (status T; the partial output is
 *     in `detail`), or no reply came in time (the exec is abandoned: its late reply is read and
 *     dropped, so the next exec on the channel still works);
 *   - TSVMM_LIMIT: the command wrote more than maxOutputBytes to stdout or stderr (`detail` has
 *     the first maxOutputBytes of each and the exit status);
 *   - TSVMM_AGENT_PROTOCOL: the agent refused the request (F), or the stream broke the framing;
 *     after a framing error the channel cannot be trusted and every later exec fails with it;
 *   - TSVMM_AGENT_CLOSED: the stream ended (every later exec fails), or the agent said hello again
 *     while a command was running (it restarted; the exec is lost, later ones go to the new agent).
 */
import type { Readable, Writable } from 'node:stream';
import { TsvmmError } from '../common/errors.js';

/** The virtio-console port name the guest's agent looks for. */
export const AGENT_PORT_NAME = 'org.tsvmm.agent';
export const AGENT_PROTOCOL_VERSION = 1;
const HELLO = `tsvmm-agent ${AGENT_PROTOCOL_VERSION}`;
/** The longest header line the host reads (a reply header is under 100 bytes). */
export const AGENT_MAX_HEADER_BYTES = 256;
/** The longest command (bytes of shell text, before base64). */
export const AGENT_MAX_COMMAND_BYTES = 64 * 1024;
/** Default cap on each of stdout and stderr. */
export const AGENT_DEFAULT_MAX_OUTPUT_BYTES = 16 << 20;
/** The largest cap an exec may ask for. */
export const AGENT_MAX_OUTPUT_BYTES = 256 << 20;
export const AGENT_DEFAULT_TIMEOUT_MS = 60_000;
/** How long after an exec's timeout the host still waits for the agent's reply. */
export const AGENT_DEFAULT_REPLY_GRACE_MS = 5_000;
/** Host timers take at most 2^31 - 1 ms. */
const MAX_TIMER_MS = 0x7fffffff;
/** Abandoned execs whose late replies the host still recognizes. */
const MAX_ABANDONED = 64;
const LF = 0x0a;
const LATIN1 = new TextDecoder('latin1');
const DECIMAL = /^(0|[1-9][0-9]{0,14})$/;
const REASON = /^[a-z][a-z0-9-]{0,31}$/;

/** Where the host's bytes for the agent go (in order; the transport buffers). */
export interface AgentTransport {
  write(bytes: Uint8Array): void;
}

export interface AgentOptions {
  /** Default cap on each of stdout and stderr (AGENT_DEFAULT_MAX_OUTPUT_BYTES). */
  maxOutputBytes?: number;
  /** Host wait beyond an exec's timeout for its reply (AGENT_DEFAULT_REPLY_GRACE_MS). */
  replyGraceMs?: number;
}

export interface ExecOptions {
  /**
   * Time for the whole exec, counted from the call: waiting for the agent's hello and for the
   * execs before it, then the command in the guest, which gets what is left (AGENT_DEFAULT_TIMEOUT_MS).
   */
  timeoutMs?: number;
  /** Cap on each of stdout and stderr (the agent's default otherwise). */
  maxOutputBytes?: number;
}

export interface ExecResult {
  stdout: Buffer;
  stderr: Buffer;
  /** The exit status: 0..255 (128 + N when the command died of signal N). */
  code: number;
}

interface Pending {
  command: string; // base64
  timeoutMs: number;
  cap: number;
  calledAt: number;
  id: number; // 0 until sent
  timer: NodeJS.Timeout | undefined;
  resolve(r: ExecResult): void;
  reject(e: TsvmmError): void;
}

/** A reply header read, whose payload is being collected. */
interface Payload {
  id: number;
  status: number | 'T';
  outSize: number;
  errSize: number;
  outSent: number;
  errSent: number;
  chunks: Uint8Array[];
  /** Bytes still to come. */
  left: number;
  /** Keep the bytes (false for an abandoned exec's reply). */
  keep: boolean;
}

function isCount(n: number, max: number): boolean {
  return Number.isSafeInteger(n) && n >= 1 && n <= max;
}

export class Agent {
  private readonly maxOutputBytes: number;
  private readonly replyGraceMs: number;
  private helloSeen = false;
  private failure: TsvmmError | undefined;
  private readonly queue: Pending[] = [];
  private current: Pending | undefined;
  /** Sent execs the host gave up on: id -> their cap (their replies are still read, and dropped). */
  private readonly abandoned = new Map<number, number>();
  private nextId = 1;
  private readonly header = new Uint8Array(AGENT_MAX_HEADER_BYTES);
  private headerLength = 0;
  private payload: Payload | undefined;
  private readonly readyWaiters = new Set<{ resolve(): void; reject(e: TsvmmError): void }>();
  private detach: (() => void) | undefined;

  constructor(private readonly transport: AgentTransport, options: AgentOptions = {}) {
    this.maxOutputBytes = options.maxOutputBytes ?? AGENT_DEFAULT_MAX_OUTPUT_BYTES;
    this.replyGraceMs = options.replyGraceMs ?? AGENT_DEFAULT_REPLY_GRACE_MS;
    if (!isCount(this.maxOutputBytes, AGENT_MAX_OUTPUT_BYTES)) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `agent maxOutputBytes ${this.maxOutputBytes} is not an integer in 1..${AGENT_MAX_OUTPUT_BYTES}`);
    }
    if (!Number.isSafeInteger(this.replyGraceMs) || this.replyGraceMs < 0 || this.replyGraceMs > MAX_TIMER_MS) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `agent replyGraceMs ${this.replyGraceMs} is not an integer in 0..${MAX_TIMER_MS}`);
    }
  }

  /**
   * An agent over Node streams: bytes from `input` are the agent's, bytes for it go to `output`
   * (the same Duplex for both, or a child process's stdout and stdin). The end or an error of
   * either stream closes the agent (TSVMM_AGENT_CLOSED); close() removes the listeners.
   */
  static overStreams(input: Readable, output: Writable, options: AgentOptions = {}): Agent {
    const agent = new Agent({ write: (bytes) => void output.write(bytes) }, options);
    const onData = (chunk: Buffer | string): void => agent.receive(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    const onEnd = (): void => agent.end('the agent stream ended');
    const onError = (e: Error): void => agent.end(`the agent stream failed: ${e.message}`);
    input.on('data', onData);
    input.on('end', onEnd);
    input.on('close', onEnd);
    input.on('error', onError);
    output.on('error', onError);
    output.on('close', onEnd);
    agent.detach = () => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('close', onEnd);
      input.off('error', onError);
      output.off('error', onError);
      output.off('close', onEnd);
    };
    return agent;
  }

  /** The agent has said hello (and the channel has not failed). */
  get ready(): boolean {
    return this.helloSeen && this.failure === undefined;
  }

  /**
   * Ready, with nothing sent and unanswered and no frame half-read: the channel is between
   * exchanges, as it must be for a snapshot to carry it over to another host.
   */
  get idle(): boolean {
    return this.ready && this.current === undefined && this.queue.length === 0 && this.abandoned.size === 0 && this.headerLength === 0 && this.payload === undefined;
  }

  /**
   * The agent said hello to an earlier host, and this one continues that channel from a
   * snapshot taken while it was idle: no hello will come again, the agent is ready now.
   */
  continueReady(): void {
    if (!this.helloSeen && this.failure === undefined) this.hello();
  }

  /** Resolves at the agent's hello; TSVMM_TIMEOUT after `timeoutMs`, or the channel's failure. */
  whenReady(timeoutMs: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.helloSeen) return Promise.resolve();
    try {
      checkTimeout(timeoutMs);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e: TsvmmError) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      const timer = setTimeout(() => {
        this.readyWaiters.delete(waiter);
        reject(new TsvmmError('TSVMM_TIMEOUT', `the guest agent did not start within ${timeoutMs} ms (no '${HELLO}' on its channel)`, { reason: 'hello' }));
      }, timeoutMs);
      this.readyWaiters.add(waiter);
    });
  }

  /**
   * Runs `command` with `sh -c` in the guest (stdin /dev/null, its own session). Resolves with its
   * output and exit status; rejects as the file header says.
   */
  exec(command: string | Uint8Array, options: ExecOptions = {}): Promise<ExecResult> {
    const bytes = typeof command === 'string' ? Buffer.from(command, 'utf8') : Buffer.from(command.buffer, command.byteOffset, command.byteLength);
    const timeoutMs = options.timeoutMs ?? AGENT_DEFAULT_TIMEOUT_MS;
    const cap = options.maxOutputBytes ?? this.maxOutputBytes;
    try {
      if (bytes.length > AGENT_MAX_COMMAND_BYTES) throw new TsvmmError('TSVMM_LIMIT', `agent command is ${bytes.length} bytes, more than ${AGENT_MAX_COMMAND_BYTES}`);
      if (bytes.includes(0)) throw new TsvmmError('TSVMM_BAD_ARGUMENT', 'agent command has a NUL byte, which a shell command cannot hold');
      checkTimeout(timeoutMs);
      if (timeoutMs + this.replyGraceMs > MAX_TIMER_MS) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `agent timeoutMs ${timeoutMs} plus the reply grace ${this.replyGraceMs} exceeds ${MAX_TIMER_MS}`);
      if (!isCount(cap, AGENT_MAX_OUTPUT_BYTES)) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `agent maxOutputBytes ${cap} is not an integer in 1..${AGENT_MAX_OUTPUT_BYTES}`);
      if (this.failure) throw this.failure;
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      const p: Pending = { command: bytes.toString('base64'), timeoutMs, cap, calledAt: Date.now(), id: 0, timer: undefined, resolve, reject };
      p.timer = setTimeout(() => this.hostTimeout(p), timeoutMs + this.replyGraceMs);
      this.queue.push(p);
      this.pump();
    });
  }

  /** Bytes the agent sent (the transport's input side calls this). */
  receive(bytes: Uint8Array): void {
    let i = 0;
    while (i < bytes.length && !this.failure) {
      const p = this.payload;
      if (p) {
        const n = Math.min(p.left, bytes.length - i);
        if (p.keep) p.chunks.push(bytes.slice(i, i + n));
        p.left -= n;
        i += n;
        if (p.left === 0) {
          this.payload = undefined;
          this.deliver(p);
        }
        continue;
      }
      const lf = bytes.indexOf(LF, i);
      const end = lf < 0 ? bytes.length : lf;
      if (this.headerLength + (end - i) > AGENT_MAX_HEADER_BYTES) {
        this.broken(`a header line longer than ${AGENT_MAX_HEADER_BYTES} bytes`);
        return;
      }
      this.header.set(bytes.subarray(i, end), this.headerLength);
      this.headerLength += end - i;
      i = end;
      if (lf < 0) return;
      i++; // the newline
      const line = LATIN1.decode(this.header.subarray(0, this.headerLength));
      this.headerLength = 0;
      this.line(line);
    }
  }

  /** The channel ended: the exec running and those waiting fail, and every later one. */
  end(reason = 'the agent channel closed'): void {
    this.fail(new TsvmmError('TSVMM_AGENT_CLOSED', reason));
  }

  /** Stops using the channel (execs fail with TSVMM_AGENT_CLOSED) and detaches from the streams. */
  close(): void {
    this.end('the agent was closed by the host');
    this.detach?.();
    this.detach = undefined;
  }

  private line(line: string): void {
    const f = line.split(' ');
    if (line.startsWith('tsvmm-agent ')) {
      if (line !== HELLO) return this.broken(`the agent speaks '${line}', this host '${HELLO}'`);
      this.hello();
      return;
    }
    if (f[0] === 'R' && f.length === 7) {
      const [, id, status, ...sizes] = f as [string, string, string, string, string, string, string];
      if (!DECIMAL.test(id) || !(status === 'T' || (DECIMAL.test(status) && Number(status) <= 255)) || !sizes.every((s) => DECIMAL.test(s))) {
        return this.broken(`a malformed reply header '${line}'`);
      }
      const [outSize, errSize, outSent, errSent] = sizes.map(Number) as [number, number, number, number];
      const cap = this.capOf(Number(id));
      if (cap === undefined) return this.broken(`a reply for request ${id}, which is not outstanding`);
      if (outSent > cap || errSent > cap || outSent > outSize || errSent > errSize) {
        return this.broken(`reply header '${line}' sends more than the request's cap of ${cap} bytes, or more than the output's size`);
      }
      const p: Payload = {
        id: Number(id), status: status === 'T' ? 'T' : Number(status), outSize, errSize, outSent, errSent,
        chunks: [], left: outSent + errSent, keep: this.current?.id === Number(id),
      };
      if (p.left === 0) this.deliver(p);
      else this.payload = p;
      return;
    }
    if (f[0] === 'F' && f.length === 3 && DECIMAL.test(f[1]!) && REASON.test(f[2]!)) {
      const id = Number(f[1]);
      if (this.capOf(id) === undefined) return this.broken(`a refusal for request ${id}, which is not outstanding`);
      if (this.abandoned.delete(id)) return;
      this.settle(this.current!, new TsvmmError('TSVMM_AGENT_PROTOCOL', `the guest agent refused request ${id}: ${f[2]}`, { reason: f[2] }));
      return;
    }
    this.broken(`an unexpected line '${line.length > 64 ? `${line.slice(0, 64)}...` : line}'`);
  }

  /** The cap of outstanding request `id` (the current one or an abandoned one), or undefined. */
  private capOf(id: number): number | undefined {
    if (this.current && this.current.id === id) return this.current.cap;
    return this.abandoned.get(id);
  }

  private hello(): void {
    this.helloSeen = true;
    // A new agent: whatever the old one was running is lost, and it owes no more replies.
    this.abandoned.clear();
    if (this.current) {
      this.settle(this.current, new TsvmmError('TSVMM_AGENT_CLOSED', `the guest agent restarted while running request ${this.current.id}`));
    }
    for (const w of this.readyWaiters) w.resolve();
    this.readyWaiters.clear();
    this.pump();
  }

  private deliver(p: Payload): void {
    if (!p.keep || this.current?.id !== p.id) {
      this.abandoned.delete(p.id);
      return;
    }
    const all = Buffer.concat(p.chunks);
    const stdout = all.subarray(0, p.outSent);
    const stderr = all.subarray(p.outSent);
    const pending = this.current;
    if (p.status === 'T') {
      this.settle(pending, new TsvmmError('TSVMM_TIMEOUT', `the command ran out of its ${pending.timeoutMs} ms in the guest and was killed`, { reason: 'command', stdout, stderr }));
    } else if (p.outSize > pending.cap || p.errSize > pending.cap) {
      this.settle(pending, new TsvmmError('TSVMM_LIMIT', `the command wrote ${p.outSize} bytes to stdout and ${p.errSize} to stderr, more than the cap of ${pending.cap} bytes each`, {
        stdout, stderr, code: p.status, stdoutSize: p.outSize, stderrSize: p.errSize,
      }));
    } else {
      this.settle(pending, { stdout, stderr, code: p.status });
    }
  }

  /** Ends the current exec with a result or an error, and sends the next. */
  private settle(p: Pending, outcome: ExecResult | TsvmmError): void {
    clearTimeout(p.timer);
    if (this.current === p) this.current = undefined;
    if (outcome instanceof TsvmmError) p.reject(outcome);
    else p.resolve(outcome);
    this.pump();
  }

  private hostTimeout(p: Pending): void {
    const queued = this.queue.indexOf(p);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      const why = this.helloSeen ? 'the execs before it did not finish' : `the guest agent has not started (no '${HELLO}')`;
      p.reject(new TsvmmError('TSVMM_TIMEOUT', `the command was never sent in its ${p.timeoutMs} ms: ${why}`, { reason: 'queued' }));
      return;
    }
    if (this.current !== p) return;
    this.abandoned.set(p.id, p.cap);
    if (this.abandoned.size > MAX_ABANDONED) this.abandoned.delete(this.abandoned.keys().next().value!);
    this.settle(p, new TsvmmError('TSVMM_TIMEOUT', `no reply from the guest agent to request ${p.id} within ${p.timeoutMs} + ${this.replyGraceMs} ms`, { reason: 'agent' }));
  }

  private pump(): void {
    if (this.failure || !this.helloSeen || this.current) return;
    const p = this.queue.shift();
    if (!p) return;
    const left = p.calledAt + p.timeoutMs - Date.now();
    if (left <= 0) {
      clearTimeout(p.timer);
      p.reject(new TsvmmError('TSVMM_TIMEOUT', `the command was never sent in its ${p.timeoutMs} ms: the execs before it did not finish`, { reason: 'queued' }));
      this.pump();
      return;
    }
    p.id = this.nextId++;
    this.current = p;
    this.transport.write(Buffer.from(`E ${p.id} ${left} ${p.cap} ${p.command}\n`, 'latin1'));
  }

  private broken(what: string): void {
    this.fail(new TsvmmError('TSVMM_AGENT_PROTOCOL', `the guest agent's channel broke its framing: ${what} (docs/agent-protocol.md)`));
  }

  private fail(e: TsvmmError): void {
    if (this.failure) return;
    this.failure = e;
    this.payload = undefined;
    const all = [...(this.current ? [this.current] : []), ...this.queue.splice(0)];
    this.current = undefined;
    for (const p of all) {
      clearTimeout(p.timer);
      p.reject(e);
    }
    for (const w of this.readyWaiters) w.reject(e);
    this.readyWaiters.clear();
  }
}

function checkTimeout(ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 1 || ms > MAX_TIMER_MS) throw new TsvmmError('TSVMM_BAD_ARGUMENT', `timeout ${ms} ms is not an integer in 1..${MAX_TIMER_MS}`);
}
