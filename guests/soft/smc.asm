; Self-modifying code on the soft CPU (test/soft/jit.test.ts): entered at start32 in flat 32-bit
; protected mode, enters long mode with identity-mapped 2 MiB pages, then patches code it has
; already executed (and that the soft CPU has decoded and, with a low threshold, compiled):
;   1. a function's MOV immediate, bumped after every call from a loop (sum 1..50 = 1275);
;   2. a self-looping block patched between two runs (100 * 3, then 100 * 5);
;   3. a self-looping block that patches its own ADD immediate (1 + 9 * 2 = 19);
;   4. a function whose first instruction is replaced by a different one (MOV -> XOR: 0).
; Results go to RESULT (qwords) and the guest ends with OUT to port 0xf4.
bits 32
org 0x100000

PT     equ 0x200000
RESULT equ 0x300000

%include "long-mode.inc"

  ; 1. patch a called function's immediate from the calling loop
  xor ebx, ebx
  mov ecx, 50
.loop1:
  call f1
  add ebx, eax
  inc dword [f1 + 1]
  dec ecx
  jnz .loop1
  mov [RESULT], rbx

  ; 2. a self-loop patched between runs
  call f2
  mov [RESULT + 8], rax
  mov byte [f2.body + 2], 5
  call f2
  mov [RESULT + 16], rax

  ; 3. a self-loop that patches itself
  call f3
  mov [RESULT + 24], rax

  ; 4. replace an instruction by another one
  mov eax, 1
  mov ecx, 20
.loop4:
  call f4
  dec ecx
  jnz .loop4
  mov [RESULT + 32], rax            ; 7 before the patch
  mov word [f4], 0xc031             ; xor eax, eax
  mov byte [f4 + 2], 0x90
  mov dword [f4 + 3], 0x90909090
  call f4
  mov [RESULT + 40], rax            ; 0 after it

  mov dx, 0xf4
  xor eax, eax
  out dx, eax
  hlt

f1:
  mov eax, 1
  ret

f2:
  xor eax, eax
  mov ecx, 100
  jmp .body
.body:
  add eax, 3
  dec ecx
  jnz .body
  ret

f3:
  xor eax, eax
  mov ecx, 10
  jmp .body                         ; so that .body starts a block (a self-loop)
.body:
  add eax, 1
  mov byte [f3.body + 2], 2
  dec ecx
  jnz .body
  ret

f4:
  mov eax, 7                        ; 5 bytes, then 2 NOPs of room
  nop
  nop
  ret
