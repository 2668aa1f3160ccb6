/**
 * The threads that run boards (board-worker.ts), and the spare ones started ahead of need.
 *
 * A new board thread spends most of its first ~0.3 s loading the project's modules (hundreds of
 * files compiled by V8) before it builds anything. warm(n) keeps n spare threads that have loaded
 * them already and wait for a machine: a machine started then (VirtualMachine.start, a restore
 * above all) gets one at once and a new spare is started behind it. Spare threads do not keep the
 * process alive (unref) and cost what an idle worker thread does (~10 MiB each).
 */
import { Worker, type TransferListItem, type WorkerOptions } from 'node:worker_threads';
import { TsvmmError } from '../common/errors.js';
import type { BoardWorkerData } from './virtual-machine.js';

/** What a spare thread says once its modules are loaded (board-worker.ts). */
export const SPARE_READY = 'tsvmm-board-spare-ready';
/** The most spare threads warm() keeps. */
export const MAX_SPARE_THREADS = 16;

const WORKER_URL = new URL('./board-worker.js', import.meta.url);

/**
 * A board thread with the process's Node options, but for --input-type, which a thread refuses
 * for its file (a program run as `node --input-type=module -e ...` could start no machine).
 * Options a thread does not take (--max-old-space-size...) are left out when inherited, refused
 * when listed: a list without --input-type that is still refused gives way to none.
 */
function newThread(options: WorkerOptions): Worker {
  const argv = process.execArgv;
  if (!argv.some((a) => a === '--input-type' || a.startsWith('--input-type='))) return new Worker(WORKER_URL, options);
  const kept = argv.filter((a, i) => !(a === '--input-type' || a.startsWith('--input-type=') || argv[i - 1] === '--input-type'));
  try {
    return new Worker(WORKER_URL, { ...options, execArgv: kept });
  } catch (e) {
    if ((e as { code?: string }).code !== 'ERR_WORKER_INVALID_EXEC_ARGV') throw e;
    return new Worker(WORKER_URL, { ...options, execArgv: [] });
  }
}

interface Spare {
  worker: Worker;
  /** Resolves when its modules are loaded (or it has ended). */
  loaded: Promise<void>;
  /** Its listeners while it waits, removed when it is handed out. */
  onMessage: (m: unknown) => void;
  drop: () => void;
}

const spares: Spare[] = [];
let wanted = 0;

function startSpare(): Spare {
  const worker = newThread({ workerData: null });
  let resolveLoaded!: () => void;
  const loaded = new Promise<void>((resolve) => (resolveLoaded = resolve));
  // Held (ref) while it loads, so that warm() is awaited in a process with nothing else to do;
  // loaded, it no longer keeps the process alive.
  const onMessage = (m: unknown) => {
    if (m !== SPARE_READY) return;
    worker.unref();
    resolveLoaded();
  };
  // A spare that ends or fails while it waits (it should not) is dropped, never handed out.
  const drop = () => {
    resolveLoaded();
    const i = spares.findIndex((s) => s.worker === worker);
    if (i >= 0) spares.splice(i, 1);
  };
  worker.on('message', onMessage);
  worker.once('exit', drop);
  worker.once('error', drop);
  return { worker, loaded, onMessage, drop };
}

/**
 * Keeps `count` spare board threads (0 to MAX_SPARE_THREADS) ready from now on, and resolves when
 * that many have loaded their modules. warm(0) ends the spares.
 */
export async function warm(count: number): Promise<void> {
  if (!Number.isInteger(count) || count < 0 || count > MAX_SPARE_THREADS) {
    throw new TsvmmError('TSVMM_BAD_ARGUMENT', `warm: the count of spare threads is an integer from 0 to ${MAX_SPARE_THREADS}, not ${count}`);
  }
  wanted = count;
  while (spares.length > wanted) void spares.pop()!.worker.terminate();
  while (spares.length < wanted) spares.push(startSpare());
  await Promise.all(spares.map((s) => s.loaded));
}

/** The spare threads' ids (Worker.threadId), oldest first: the next one handed out is the first. */
export function spareThreadIds(): number[] {
  return spares.map((s) => s.worker.threadId);
}

/**
 * A thread running the board for `data`: a spare one if warm() left any (a new spare is started
 * behind it), else a new thread. Its messages are the board worker's (FromBoard; a spare taken
 * before it had loaded may still say SPARE_READY first).
 */
export function boardThread(data: BoardWorkerData, transferList: TransferListItem[]): Worker {
  const spare = spares.shift();
  if (!spare) return newThread({ workerData: data, transferList });
  const { worker, onMessage, drop } = spare;
  worker.off('message', onMessage);
  worker.off('exit', drop);
  worker.off('error', drop);
  worker.ref();
  worker.postMessage(data, transferList);
  if (spares.length < wanted) setImmediate(() => { if (spares.length < wanted) spares.push(startSpare()); });
  return worker;
}
