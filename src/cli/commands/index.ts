import type { Command } from '../command.js';
import { demo } from './demo.js';
import { disasm } from './disasm.js';
import { initramfs } from './initramfs.js';
import { run } from './run.js';
import { selftest } from './selftest.js';

/** Every `tsvmm` subcommand, in the order `tsvmm help` lists them. */
export const COMMANDS: readonly Command[] = [run, demo, selftest, disasm, initramfs];
