/**
 * The part of the WebAssembly JS API that the soft CPU uses (Node has it; the project's `lib`
 * setting leaves out the DOM typings that declare it).
 */
declare namespace WebAssembly {
  interface MemoryDescriptor { initial: number; maximum?: number; shared?: boolean }
  class Memory {
    constructor(descriptor: MemoryDescriptor);
    readonly buffer: ArrayBuffer | SharedArrayBuffer;
    grow(delta: number): number;
  }
  class Table {
    constructor(descriptor: { element: 'anyfunc'; initial: number; maximum?: number });
    readonly length: number;
    grow(delta: number, value?: unknown): number;
    set(index: number, value: unknown): void;
  }
  class Module {
    constructor(bytes: Uint8Array);
  }
  /** Whether the engine would compile `bytes` (false, not an exception, for a feature it lacks). */
  function validate(bytes: Uint8Array): boolean;
  /** A JS function, a Memory, or an exported WebAssembly function of another instance. */
  type ImportValue = unknown;
  class Instance {
    constructor(module: Module, imports: Record<string, Record<string, ImportValue>>);
    readonly exports: Record<string, unknown>;
  }
}
