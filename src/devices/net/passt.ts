/**
 * User-mode networking through passt (Debian package `passt`): an unprivileged process that
 * turns the guest's Ethernet frames into the host's own TCP, UDP and ICMP sockets, answers the
 * guest's ARP, DHCP, NDP and DHCPv6 itself, and forwards chosen host ports to the guest. The
 * `--nic user` backend.
 *
 * How passt is run (checked against the Debian 12 version, 0.0~git20230309):
 *   passt --foreground --one-off --fd 3 --pid DIR/passt.pid --quiet --mtu MTU [-t|-u SPEC]...
 * - The connection is one end of a socket pair we make, given as descriptor 3 (`--fd`), rather
 *   than a UNIX socket path: run as root, passt switches to `nobody` before it binds its socket,
 *   so it cannot bind in a directory private to root, and this version then says "bound" anyway.
 *   A socket pair needs no path, no connect retries and no wait for a bind.
 * - `--one-off`: passt ends when the connection closes, so it ends with this process even if
 *   this process is killed; close() also sends it SIGTERM and waits for it.
 * - `--pid` in a private temporary directory (owned by the user passt runs as: `nobody`, given
 *   as `--runas 65534:65534` when we are root, else ourselves): passt writes it once it is set
 *   up, which is when start() resolves; an exit before that is a start failure with passt's
 *   own message.
 * - `--mtu`: the MTU passt's DHCP and NDP give the guest, the one the device reports (passt's
 *   default is 65520, which a guest would try to use over a 1500-byte device).
 * - Forwards: `-t [ADDR/]HOSTPORT:GUESTPORT` for TCP, `-u` for UDP; passt binds the host ports.
 *   This version does not fail when a port is taken (it goes on without it).
 * The frames travel with passt's stream framing (frame-stream.ts: 4-byte big-endian length).
 *
 * Missing passt: TSVMM_TOOL_MISSING naming the package. Any other failure to start, or passt
 * exiting later: TSVMM_NET_BACKEND / the receiver's closed() with passt's last error lines.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TsvmmError } from '../../common/errors.js';
import * as libc from '../../common/libc.js';
import { StreamNetBackend } from './frame-stream.js';
import { NET_DEFAULT_MTU, type NetBackend, type NetReceiver } from './net-backend.js';
import type { HostForward } from './nic-config.js';

/** The user passt runs as when started by root (what it picks itself: nobody). */
const NOBODY = 65534;
/** Characters of passt's stderr kept for error messages: its start and its end. */
const STDERR_KEEP = 4096;
const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 2_000;
const POLL_MS = 10;

export interface PasstOptions {
  /** Host ports forwarded to the guest. */
  hostForwards?: readonly HostForward[];
  /** The MTU passt gives the guest (NET_DEFAULT_MTU by default). */
  mtu?: number;
  /** The passt program (default: `passt` on PATH). */
  program?: string;
  /** More arguments for passt (after ours), e.g. ['--no-dhcp-dns']. */
  extraArgs?: readonly string[];
  /** How long passt may take to set up (default 10 s). */
  startTimeoutMs?: number;
}

/** passt's arguments for a forward: `-t 8080:80`, `-u 127.0.0.1/5353:53`. */
export function passtForwardArgs(f: HostForward): string[] {
  return [f.protocol === 'tcp' ? '-t' : '-u', `${f.hostAddress === null ? '' : `${f.hostAddress}/`}${f.hostPort}:${f.guestPort}`];
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class PasstBackend implements NetBackend {
  readonly description: string;
  private readonly stream: StreamNetBackend;
  /** Settles when passt has exited and its stderr is read (or it never started). */
  private readonly exited: Promise<void>;
  private stderrHead = '';
  private stderrTail = '';
  private receiver: NetReceiver | null = null;

  private constructor(
    private readonly child: ChildProcess,
    socket: Socket,
    private readonly dir: string,
  ) {
    this.description = `passt (pid ${child.pid})`;
    child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString('utf8');
      if (this.stderrHead.length < STDERR_KEEP) this.stderrHead = (this.stderrHead + text).slice(0, STDERR_KEEP);
      this.stderrTail = (this.stderrTail + text).slice(-STDERR_KEEP);
    });
    this.exited = new Promise((resolve) => {
      child.once('close', () => resolve());
      child.once('error', () => resolve());
    });
    this.stream = new StreamNetBackend(socket, this.description);
    this.stream.attach({
      frame: (f) => this.receiver?.frame(f),
      writable: () => this.receiver?.writable(),
      closed: (reason) => void this.ended(reason),
    });
  }

  /** Starts passt and resolves once it is set up; rejects with TSVMM_TOOL_MISSING or TSVMM_NET_BACKEND. */
  static async start(opts: PasstOptions = {}): Promise<PasstBackend> {
    const program = opts.program ?? 'passt';
    const dir = mkdtempSync(join(tmpdir(), 'tsvmm-passt-'));
    const root = process.getuid?.() === 0;
    const pidFile = join(dir, 'passt.pid');
    const sv = new Int32Array(2);
    try {
      if (root) chownSync(dir, NOBODY, NOBODY);
      if (libc.socketpair(libc.AF_UNIX, libc.SOCK_STREAM | libc.SOCK_CLOEXEC, 0, sv) < 0) {
        throw new TsvmmError('TSVMM_NET_BACKEND', `socketpair for passt failed: errno ${libc.lastErrno()}`);
      }
    } catch (e) {
      rmSync(dir, { recursive: true, force: true });
      throw e;
    }
    const args = [
      '--foreground', '--one-off', '--fd', '3', '--pid', pidFile, '--quiet', '--mtu', String(opts.mtu ?? NET_DEFAULT_MTU),
      ...(root ? ['--runas', `${NOBODY}:${NOBODY}`] : []),
      ...(opts.hostForwards ?? []).flatMap(passtForwardArgs),
      ...(opts.extraArgs ?? []),
    ];
    const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe', sv[1]!] });
    libc.close(sv[1]!); // the child has its copy
    const socket = new Socket({ fd: sv[0]!, readable: true, writable: true });
    const backend = new PasstBackend(child, socket, dir);
    try {
      await backend.ready(program, pidFile, opts.startTimeoutMs ?? START_TIMEOUT_MS);
    } catch (e) {
      await backend.close();
      throw e;
    }
    return backend;
  }

  /** Waits for the spawn, then for passt's PID file (written once it is set up) or its exit. */
  private async ready(program: string, pidFile: string, timeoutMs: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.child.once('spawn', resolve);
      this.child.once('error', (e: NodeJS.ErrnoException) => reject(e.code === 'ENOENT'
        ? new TsvmmError('TSVMM_TOOL_MISSING', `${program} not found: --nic user needs passt (Debian package passt: apt-get install passt)`)
        : new TsvmmError('TSVMM_NET_BACKEND', `cannot start ${program}: ${e.message}`)));
    });
    for (let waited = 0; ; waited += POLL_MS) {
      if (!this.running()) {
        await this.exited; // and its last words read
        throw new TsvmmError('TSVMM_NET_BACKEND', `passt ${this.exitStatus()} while starting${this.lastWords()}`);
      }
      let pid = '';
      try {
        pid = readFileSync(pidFile, 'utf8');
      } catch {
        // not there yet
      }
      if (/^[0-9]+\n/.test(pid)) return;
      if (waited >= timeoutMs) throw new TsvmmError('TSVMM_NET_BACKEND', `passt did not set up within ${timeoutMs} ms${this.lastWords()}`);
      await delay(POLL_MS);
    }
  }

  /** passt's last message lines (its attempts to reach syslog left out). */
  private lastWords(): string {
    const lines = (text: string): string[] => text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/to syslog$/.test(l));
    const head = lines(this.stderrHead);
    const usage = head.findIndex((l) => l.startsWith('Usage:'));
    const words = usage >= 0 ? head.slice(0, usage) : lines(this.stderrTail); // the complaint before the help text, else the last lines
    return words.length === 0 ? '' : `: ${words.slice(-3).join(' / ')}`;
  }

  /** passt's process id. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  attach(receiver: NetReceiver): void {
    this.receiver = receiver;
  }

  send(frame: Uint8Array): boolean {
    return this.stream.send(frame);
  }

  async close(): Promise<void> {
    await this.stream.close(); // ends the connection, and passt with it (ended())
    await this.exited;
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The connection ended (either side): passt is ended too, and the receiver told why, in passt's words if it went first. */
  private async ended(reason: string | null): Promise<void> {
    this.stop();
    if (reason !== null) {
      await this.exited;
      reason = `${reason}; passt ${this.exitStatus()}${this.lastWords()}`;
    }
    this.receiver?.closed(reason);
  }

  private running(): boolean {
    return this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  private exitStatus(): string {
    return this.child.signalCode !== null ? `killed by ${this.child.signalCode}` : `exited with status ${this.child.exitCode}`;
  }

  private stop(): void {
    if (!this.running()) return;
    this.child.kill('SIGTERM');
    const kill = setTimeout(() => this.child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    kill.unref();
    void this.exited.then(() => clearTimeout(kill));
  }
}
