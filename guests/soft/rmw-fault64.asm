; rmw-fault.asm's question for compiled code (test/soft/rmw-fault.test.ts): the soft CPU compiles
; hot 64-bit code only, so here each case is a loop in long mode that runs its read-modify-write
; 4999 times on a writable page (SCRATCH) and the 5000th time on a read-only 2 MiB page (CR0.WP
; makes it read-only at CPL 0 too). The write faults; the frame's flags must be those from before
; the instruction, which then runs again once the #PF handler has made the page writable. Before
; each instruction CF is set (STC) and, on the last iteration, ZF (the CMP that picks the page).
; Per case at RESULT + 32k: the vector, the error code, the frame's status flags, the read-only
; destination's value after the instruction ran again, SCRATCH's low half.
bits 32
org 0x100000
PT equ 0x200000                 ; long-mode.inc's tables: PML4, PDPT, then the PD at PT + 0x2000
IDT equ 0x300000
RESULT equ 0x310000
SCRATCH equ 0x380000
RO equ 0x400000                 ; case k's destination: RO + k * 0x200000
CASES equ 3

%include "long-mode.inc"
  mov rdi, IDT + 14 * 16
  mov rax, pf_handler
  call set_gate
  lidt [idtr]
  mov qword [RO + 0 * 0x200000], 1              ; ADC 1 + 1 + CF
  mov qword [RO + 1 * 0x200000], 5              ; SBB 5 - 1 - CF
  mov qword [RO + 2 * 0x200000], 1              ; ADD 1 + 1
  mov ecx, CASES
  mov rdi, PT + 0x2000 + (RO >> 21) * 8
.ro:
  and qword [rdi], ~2
  add rdi, 8
  loop .ro
  mov rax, cr3
  mov cr3, rax
  mov rax, cr0
  or eax, 0x10000                               ; WP
  mov cr0, rax
  mov eax, 1

; Case %2: `%1 qword [rdi], rax` 5000 times, the last on its read-only page.
%macro HOT_CASE 2
  mov qword [SCRATCH], 0
  mov ecx, 5000
  mov rdi, SCRATCH
  mov rsi, RO + %2 * 0x200000
%%loop:                         ; one block, so that the last iteration runs compiled too
  cmp ecx, 1
  cmove rdi, rsi
  stc
  %1 qword [rdi], rax
  dec ecx
  jnz %%loop
  mov rbx, [RO + %2 * 0x200000]
  mov [RESULT + 32 * %2 + 12], ebx
  mov rbx, [SCRATCH]
  mov [RESULT + 32 * %2 + 16], ebx
%endmacro

  HOT_CASE adc, 0
  HOT_CASE sbb, 1
  HOT_CASE add, 2
  mov al, 0xdd
  out 0xe0, al
  out 0xe1, al
  jmp $

pf_handler:                     ; [rsp]: error code, RIP, CS, RFLAGS, RSP, SS
  push rax
  push rbx
  push rcx
  mov rax, cr2
  sub rax, RO
  shr rax, 21                   ; the case
  cmp rax, CASES
  jae .wild
  mov rbx, rax
  shl rbx, 5
  add rbx, RESULT
  mov dword [rbx], 14
  mov rcx, [rsp + 24]
  mov [rbx + 4], ecx            ; error code
  mov rcx, [rsp + 24 + 24]
  and ecx, 0x8d5
  mov [rbx + 8], ecx            ; the frame's status flags
  or qword [PT + 0x2000 + (RO >> 21) * 8 + rax * 8], 2
  mov rax, cr2
  invlpg [rax]
  pop rcx
  pop rbx
  pop rax
  add rsp, 8                    ; the error code
  iretq                         ; the instruction again
.wild:
  mov al, 0xee
  out 0xe0, al
  out 0xe1, al
  jmp $

%include "../board/idt64.inc"

align 8
idtr: dw 256 * 16 - 1
  dq IDT
