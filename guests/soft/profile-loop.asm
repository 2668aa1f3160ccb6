; A guest for the soft CPU's profiler test (test/soft/profile.test.ts): enters long mode, reports
; the address of its hot loop with OUT to port 0xE0, then forever runs the hot loop HOT_ITER times
; and leaves with OUT to port 0xE2 (an exit: the test decides when it has seen enough).
bits 32
org 0x100000
PT  equ 0x200000
HOT_ITER equ 2000000

%include "long-mode.inc"
  mov eax, hot
  out 0xe0, eax
  xor eax, eax
outer:
  mov ecx, HOT_ITER
hot:
  add rax, rcx
  rol rax, 7
  dec ecx
  jnz hot
  out 0xe2, al
  jmp outer
