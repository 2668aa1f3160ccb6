/** The guest image loaders and boot-data builders (see DESIGN.md, layer loader/). */
export * from './guest-memory.js';
export * from './load-result.js';
export * from './bzimage.js';
export * from './boot-params.js';
export * from './elf.js';
export * from './pvh.js';
export * from './vmlinux.js';
export * from './multiboot.js';
export * from './flat.js';
export * from './initramfs.js';
export * from './kernel-modules.js';
export * from './xz.js';
export * from './kernel-cache.js';
export * from './guest-kernels.js';
