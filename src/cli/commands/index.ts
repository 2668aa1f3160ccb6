import type { Command } from '../command.js';

/** Every `tsvmm` subcommand, in the order `tsvmm help` lists them. */
export const COMMANDS: readonly Command[] = [];
