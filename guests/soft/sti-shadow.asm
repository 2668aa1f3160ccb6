; An interrupt that waits while IF is clear comes right after the one instruction in the shadow of
; the STI that sets IF, also when the code clears IF again soon after and runs compiled, the
; dispatcher going from region to region (test/soft/sti-shadow.test.ts). Each part runs a loop of
; CLI ... STI; INC R13; INC R13 ... ITER times, R13 zeroed after the CLI; each round writes port
; 0x41 with IF clear, 1 in round WARM (its code compiled and run by then), which raises the test's
; interrupt line (vector 0x20). The handler keeps R13 in R14 and the round in R15; each part
; reports R14 then R15 (OUT 0xE0): 1 and WARM, the interrupt coming after the first INC of that
; round. 64-bit, at 0x2000 in the standard libnvmm guest (test/helpers/idt-guest.ts: IDT at
; 0x1000, vector 0x20 at `handler`).
bits 64
org 0x2000
ITER equ 1000
WARM equ 100

; With IF clear: writes port 0x41 (1 in round WARM, R12: raises the line), then STI and the two
; INCs of R13 (the first in the STI's shadow).
%macro RAISE_IN_WARM_THEN_STI 0
  xor eax, eax
  cmp r12d, WARM
  sete al
  out 0x41, al                  ; 1 in round WARM: raise the line
  sti
  inc r13d                      ; in the STI's shadow
  inc r13d
%endmacro

  jmp start
  align 8
  dq handler                    ; 0x2008: where the test points vector 0x20
start:
  ; Part 1: CLI and STI in one loop, which a compiled region runs round by itself.
  mov r14d, -1
  mov r15d, -1
  xor r12d, r12d
.one:
  inc r12d
  cli                           ; (after an instruction compiled inline: a block of its own is not compiled)
  xor r13d, r13d
  RAISE_IN_WARM_THEN_STI
  cmp r12d, ITER
  jb .one
  cli
  call report

  ; Part 2: as Linux waits for another CPU's bit (BT of memory by a register: a handler call,
  ; one that does not stop the dispatcher) and calls the scheduler between, which divides (another
  ; such handler call) with interrupts off and ends with STI.
  mov r14d, -1
  mov r15d, -1
  xor r12d, r12d
.two:
  inc r12d
  xor edx, edx
  bt [rel never], rdx
  jc .out
  call schedule
  cmp r12d, ITER
  jb .two
.out:
  cli
  call report
  hlt

schedule:
  mov eax, r12d
  cli
  xor r13d, r13d
  xor edx, edx
  mov ecx, 7
  div ecx
  RAISE_IN_WARM_THEN_STI
  ret

report:
  mov eax, r14d
  out 0xe0, eax
  mov eax, r15d
  out 0xe0, eax
  ret

handler:
  mov r14d, r13d
  mov r15d, r12d
  iretq

  align 8
never:
  dq 0                          ; the bit part 2 waits for, never set
