/**
 * The boot vCPU's thread: builds the board from the options the main thread posted, reports
 * its stop handle, runs until the machine ends, and reports how it ended.
 */
import { writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { TsvmmError } from '../common/errors.js';
import { PcBoard, type VmEnd } from './board.js';
import { ByteRing } from './byte-ring.js';
import { maxImageBytes, readImageFile } from './image-file.js';
import type { BoardWorkerData, FromBoard } from './virtual-machine.js';

const data = workerData as BoardWorkerData;
const port = parentPort!;
const post = (msg: FromBoard) => port.postMessage(msg);

/** A regular file no larger than the guest's RAM (see image-file.ts). */
function readImage(path: string, what: string): Uint8Array {
  return readImageFile(path, what, maxImageBytes(data.memoryBytes));
}

let end: VmEnd;
let board: PcBoard | undefined;
try {
  board = new PcBoard({
    accel: data.accel,
    cpu: data.cpu,
    memoryBytes: data.memoryBytes,
    cpus: data.cpus,
    kernel: readImage(data.kernel, 'kernel'),
    initrd: data.initrd === undefined ? undefined : readImage(data.initrd, 'initrd'),
    cmdline: data.cmdline,
    flat: data.flat,
    pvh: data.pvh,
    kernelCacheDir: data.kernelCacheDir,
    inlineDevices: data.inlineDevices,
    timeout: data.timeout,
    serialOut: new ByteRing(data.serialOut),
    serialIn: new ByteRing(data.serialIn),
    control: new Int32Array(data.control),
    log: (message) => post({ type: 'log', message }),
    traceCpu: data.traceCpu,
    profile: data.profile,
    // Straight to descriptor 2: a worker's process.stderr is a stream to the main thread that
    // does not flush while the run loop holds this thread.
    traceSink: (line) => void writeSync(2, line),
  });
  await board.startAps();
  post({ type: 'ready', stopHandle: board.stopHandle(), format: board.format });
  end = board.run();
} catch (e) {
  end = e instanceof TsvmmError
    ? { how: 'error', code: e.code, message: e.message }
    : { how: 'error', code: 'TSVMM_INTERNAL', message: (e as Error).stack ?? String(e) };
}
await board?.stopAps();
post({
  type: 'end',
  end,
  exits: board ? Object.fromEntries(board.exits) : {},
  inlineIo: board?.inlineIo ?? 0,
  cpu: board?.vcpu.statistics() ?? {},
  profile: board?.profile(),
  unknownPorts: board?.ports.unknown ?? [],
  unknownMmio: board?.mmio.unknown ?? [],
});
await board?.close();
