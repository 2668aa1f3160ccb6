/**
 * The GDB remote stub on TCP (`target remote HOST:PORT`): one client at a time (another is
 * refused, its connection closed at once), on the loopback address unless told otherwise. A client
 * that disconnects without detaching leaves the machine running, with its breakpoints removed.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { TsvmmError } from '../../common/errors.js';
import { GdbStub } from './stub.js';
import type { DebugTarget } from './target.js';

/** How long close() waits for a client to close its side after the stub ended the connection. */
const CLOSE_GRACE_MS = 2000;

export interface GdbServerOptions {
  /** TCP port (0: any free one; see GdbServer.port). */
  port: number;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  log?: (message: string) => void;
}

export const DEFAULT_GDB_HOST = '127.0.0.1';

export class GdbServer {
  private readonly server: Server;
  private readonly target: DebugTarget;
  private readonly log: (message: string) => void;
  private client: { socket: Socket; stub: GdbStub } | null = null;
  /** The address and port it listens on. */
  host = '';
  port = 0;

  private constructor(target: DebugTarget, log: (message: string) => void) {
    this.target = target;
    this.log = log;
    this.server = createServer((socket) => this.accept(socket));
  }

  /** Listens on `opts.host:opts.port` and serves `target`. */
  static async listen(target: DebugTarget, opts: GdbServerOptions): Promise<GdbServer> {
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
      throw new TsvmmError('TSVMM_BAD_ARGUMENT', `gdb port ${opts.port} is not 0-65535`);
    }
    const s = new GdbServer(target, opts.log ?? (() => {}));
    const host = opts.host ?? DEFAULT_GDB_HOST;
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', (e) => reject(new TsvmmError('TSVMM_BAD_ARGUMENT', `gdb server on ${host}:${opts.port}: ${e.message}`)));
      s.server.listen(opts.port, host, () => resolve());
    });
    s.server.on('error', (e) => s.log(`gdb: ${e.message}`));
    const addr = s.server.address();
    if (addr && typeof addr === 'object') {
      s.host = addr.address;
      s.port = addr.port;
    }
    return s;
  }

  private accept(socket: Socket): void {
    if (this.client) {
      this.log(`gdb: refused a second client from ${socket.remoteAddress}:${socket.remotePort}`);
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const stub = new GdbStub(this.target, (bytes) => {
      if (!socket.destroyed) socket.write(bytes);
    }, { log: this.log });
    const client = { socket, stub };
    this.client = client;
    this.log(`gdb: client ${socket.remoteAddress}:${socket.remotePort} connected`);
    socket.on('data', (b: Buffer) => stub.feed(b));
    socket.on('error', () => {}); // a reset connection ends like a closed one
    socket.once('close', () => {
      void stub.close().finally(() => {
        if (this.client === client) this.client = null;
      });
    });
  }

  /** Whether a client is connected. */
  get connected(): boolean {
    return this.client !== null;
  }

  /**
   * Stops listening and lets the client go (the machine runs on). The connection is ended, not
   * destroyed: what the stub wrote last (a W packet when the machine ended) goes out before the
   * FIN. Destroying it at once would reset the connection whenever the client's last bytes (its
   * acknowledgement) were still unread here, and a reset can discard the W the client had not yet
   * read. A client that does not close its side within CLOSE_GRACE_MS is cut off.
   */
  async close(): Promise<void> {
    const c = this.client;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (c) {
      const gone = new Promise<void>((resolve) => {
        if (c.socket.destroyed) resolve();
        else c.socket.once('close', () => resolve());
      });
      c.socket.end();
      const grace = setTimeout(() => c.socket.destroy(), CLOSE_GRACE_MS).unref();
      await gone;
      clearTimeout(grace);
      await c.stub.close();
    }
    await closed;
  }
}
