; Loops for the soft CPU's block compilers (test/soft/jit-loops.test.ts): flag producers whose
; consumer is in the next block (a JMP between them, or the loop's back edge), so compiled
; regions evaluate flags and carries left pending by an earlier block (and bit tests, which keep
; all of them but CF). Operands come from a xorshift generator; each section folds what it saw
; into R9 and reports R9's low half on port 0xE0, and the last OUT to 0xE1 ends the run. The
; same image runs interpreted and compiled.
bits 32
org 0x100000
PT  equ 0x200000
BUF equ 0x300000
ITER equ 300

%include "long-mode.inc"
  mov rsp, 0x180000
  mov r15, 0x9e3779b97f4a7c15     ; generator state
  xor r9, r9

  ; --- 1: ADC/SBB chains over 4 limbs, the carry crossing the back edge (DEC/JNZ keep CF) ---
  mov r12, ITER
.s1:
  call rnd
  mov [BUF], rax
  call rnd
  mov [BUF + 8], rax
  call rnd
  mov [BUF + 32], rax
  call rnd
  mov [BUF + 40], rax
  xor ecx, ecx
  mov edx, 4
  clc
.add:
  mov rax, [BUF + rcx * 8]
  adc rax, [BUF + 32 + rcx * 8]
  mov [BUF + 64 + rcx * 8], rax
  inc rcx
  dec edx
  jnz .add
  setc al
  movzx eax, al
  call fold
  mov rax, [BUF + 64]
  call fold
  mov rax, [BUF + 72]
  call fold
  xor ecx, ecx
  mov edx, 4
  stc
.sub:
  mov rax, [BUF + rcx * 8]
  sbb rax, [BUF + 32 + rcx * 8]
  mov [BUF + 64 + rcx * 8], rax
  lea rcx, [rcx + 1]
  dec edx
  jnz .sub
  sbb eax, eax
  call fold
  mov rax, [BUF + 88]
  call fold
  dec r12
  jnz .s1
  mov eax, r9d
  out 0xe0, eax

  ; --- 2: every producer, then every condition in the next block ---
  mov r12, ITER
.s2:
  call rnd
  mov rbx, rax
  call rnd
  mov rcx, rax
  and ecx, 0x47                   ; shift counts 0..7 and 64..71 (masked: 0..7)
%macro CONSUME 0
  jmp %%next
%%next:
  seto al
  setb ah
  shl ah, 1
  or al, ah
  setz ah
  shl ah, 2
  or al, ah
  setbe ah
  shl ah, 3
  or al, ah
  sets ah
  shl ah, 4
  or al, ah
  setp ah
  shl ah, 5
  or al, ah
  setl ah
  shl ah, 6
  or al, ah
  setle ah
  shl ah, 7
  or al, ah
  movzx eax, al
  call fold
  mov rax, rbx
  call fold
%endmacro
%macro CARRY 0
  jmp %%next
%%next:
  mov eax, 0
  adc eax, eax
  call fold
%endmacro
  mov rax, rbx
  cmp rax, rcx
  CONSUME
  cmp ebx, ecx
  CONSUME
  add rbx, rcx
  CONSUME
  add bl, cl
  CONSUME
  sub bx, cx
  CONSUME
  and rbx, rcx
  CONSUME
  or ebx, 0x8000
  CONSUME
  test bl, cl
  CONSUME
  inc rbx
  CONSUME
  dec bx
  CONSUME
  neg rbx
  CONSUME
  adc rbx, rcx
  CONSUME
  sbb ebx, ecx
  CONSUME
  shl rbx, cl
  CONSUME
  shr ebx, cl
  CONSUME
  sar bx, cl
  CONSUME
  sar rbx, 5
  CONSUME
  imul rbx, rcx
  CONSUME
  imul ebx, ecx
  CONSUME
  mov rax, rbx
  mul rcx
  mov rbx, rdx
  CONSUME
  cmp rbx, rcx
  CARRY
  add rbx, rcx
  CARRY
  inc rbx
  CARRY
  sbb rbx, rcx
  CARRY
  dec r12
  jnz .s2
  mov eax, r9d
  out 0xe0, eax

  ; --- 3: indirect calls and jumps in a loop ---
  mov r12, ITER
.s3:
  call rnd
  and eax, 3
  lea rdx, [rel table]
  call [rdx + rax * 8]
  call fold
  lea rdx, [rel .back]
  jmp rdx
.back:
  dec r12
  jnz .s3
  mov eax, r9d
  out 0xe0, eax

  ; --- 4: BT BTS BTR BTC: CF the bit, the other status flags the producer's before them ---
  mov r12, ITER
.s4:
  call rnd
  mov rbx, rax
  call rnd
  mov rcx, rax
  mov [BUF], rax
  cmp rbx, rcx
  bt rbx, rcx                     ; register offset, modulo 64
  CONSUME
  add ebx, ecx
  bts ebx, 37                     ; immediate offset, modulo 32
  CONSUME
  inc rbx
  btr bx, cx
  CONSUME
  test bl, cl
  btc qword [BUF], 70
  CONSUME
  mov rax, [BUF]
  call fold
  call rnd
  mov rbx, rax
  sub rbx, rcx
  jmp .bt_next                    ; the producer in the block before (OF set a quarter of the time)
.bt_next:
  bts rbx, rcx
  CONSUME
  btr rbx, 9                      ; flags dead (ADD writes them): the bit still changes
  add rbx, rcx
  CONSUME
  dec r12
  jnz .s4
  mov eax, r9d
  out 0xe0, eax

  mov eax, r9d
  out 0xe1, eax
  hlt

align 8
table: dq f0, f1, f2, f3
f0: mov eax, 1
  ret
f1: lea rax, [rel f1]
  ret
f2: mov rax, r15
  shr rax, cl
  ret
f3: mov rax, rsp
  ret

; RAX := the next xorshift64 value (flags clobbered: every caller's flags come after).
rnd:
  mov rax, r15
  shl rax, 13
  xor r15, rax
  mov rax, r15
  shr rax, 7
  xor r15, rax
  mov rax, r15
  shl rax, 17
  xor r15, rax
  mov rax, r15
  ret

; R9 := R9 * 31 + RAX (RAX kept).
fold:
  imul r9, r9, 31
  add r9, rax
  ret
