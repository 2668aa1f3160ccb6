; Handler calls that leave the run loop nothing to look at (DIV, CMPXCHG without LOCK) do not stop
; jit-wasm.ts's dispatcher between compiled regions (test/soft/jit-loops.test.ts): a loop calls a
; function whose region calls the DIV handler, ITER times; the test counts the regions chained.
; Then such a call (CMPXCHG) rewrites the code of a function that runs next, and the new code
; must run. Each part reports R9's low half on port 0xE0; OUT to 0xE1 ends the run.
bits 32
org 0x100000
PT  equ 0x200000
ITER equ 1000

%include "long-mode.inc"
  mov r12, ITER
  xor r9, r9
  mov ecx, 7
.loop:
  call divide
  dec r12
  jnz .loop
  mov eax, r9d
  out 0xe0, eax

  mov r12, 4
.smc:
  call get
  add r9, rax
  call patch
  dec r12
  jnz .smc
  mov eax, r9d
  out 0xe0, eax
  out 0xe1, eax
  hlt

; R9 += (R12 + 100) mod 7.
divide:
  lea rax, [r12 + 100]
  xor edx, edx
  div rcx
  add r9, rdx
  ret

; get's immediate += 1, by an unlocked CMPXCHG (a handler call) into this code page.
patch:
  mov eax, [rel get + 1]
  lea edx, [rax + 1]
  cmpxchg [rel get + 1], edx
  ret

get:
  mov eax, 1
  ret
