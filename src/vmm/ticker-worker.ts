/** The ticker's thread (see ticker.ts). */
import { workerData } from 'node:worker_threads';
import { stopVcpu } from '../nvmm/stop.js';
import { tickerLoop, type TickerData } from './ticker.js';

tickerLoop(workerData as TickerData, stopVcpu);
