/**
 * The boot vCPU's thread: opens the backend the configuration asks for (here: KVM's and koffi's
 * state is per thread), builds the board on it, reports its stop handle, runs until the machine
 * ends, and reports how it ended. Its machine comes as workerData, or (a spare thread started
 * ahead of need: board-threads.ts) as its first message.
 */
import { writeSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { openBackend } from '../backends/open.js';
import { SoftProfiler } from '../backends/open.js';
import { TsvmmError } from '../common/errors.js';
import type { Backend } from '../nvmm/backend.js';
import { PcBoard, type VmEnd } from './board.js';
import { SPARE_READY } from './board-threads.js';
import { ByteRing } from './byte-ring.js';
import { cpuTrace } from './trace.js';
import type { BoardWorkerData, FromBoard } from './virtual-machine.js';

const port = parentPort!;
// A spare thread (board-threads.ts) has loaded every module above by now: it says so and waits
// for its machine.
const data = (workerData as BoardWorkerData | null) ?? await new Promise<BoardWorkerData>((resolve) => {
  port.once('message', resolve);
  port.postMessage(SPARE_READY);
});
const { config } = data;
const post = (msg: FromBoard) => port.postMessage(msg);
const log = (message: string) => post({ type: 'log', message });

let end: VmEnd;
let backend: Backend | undefined;
let board: PcBoard | undefined;
let profiler: SoftProfiler | undefined;
try {
  profiler = config.profile && new SoftProfiler({ ...config.profile, gate: data.profileGate });
  // Straight to descriptor 2: a worker's process.stderr is a stream to the main thread that
  // does not flush while the run loop holds this thread.
  const trace = config.traceCpu ? cpuTrace(config.traceCpu, (line) => void writeSync(2, line)) : undefined;
  backend = openBackend(config.accel, { cpu: config.cpu, trace, profile: profiler, log });
  board = new PcBoard(config, {
    backend,
    serialOut: new ByteRing(data.serialOut),
    serialIn: new ByteRing(data.serialIn),
    ...(data.agentOut && data.agentIn ? { agentOut: new ByteRing(data.agentOut), agentIn: new ByteRing(data.agentIn) } : {}),
    control: new Int32Array(data.control),
    nicRings: data.nicRings,
    log,
    debugChannels: data.debugChannels,
    restore: data.restore,
    controlPort: data.controlPort,
  });
  await board.startAps();
  post({ type: 'ready', stopHandle: board.stopHandle(), apStops: board.apStopHandles(), format: board.format });
  end = board.run();
} catch (e) {
  end = e instanceof TsvmmError
    ? { how: 'error', code: e.code, message: e.message }
    : { how: 'error', code: 'TSVMM_INTERNAL', message: (e as Error).stack ?? String(e) };
}
await board?.stopAps();
const profile = profiler?.stop();
post({
  type: 'end',
  end,
  exits: board ? Object.fromEntries(board.exits) : {},
  inlineIo: board?.inlineIo ?? 0,
  inlineMmio: board?.inlineMmio ?? 0,
  cpu: board?.vcpu.statistics() ?? {},
  profile: board ? profile : undefined,
  unknownPorts: board?.ports.unknown ?? [],
  unknownMmio: board?.mmio.unknown ?? [],
  nicDevices: board?.virtio?.nicCounters() ?? [],
});
await board?.close();
backend?.close?.();
data.controlPort?.close();
