; Call gates in long mode (test/soft/call-gate.test.ts), run on the soft CPU and on KVM.
; Entered at 0x100000 in flat 32-bit protected mode; long-mode.inc enters 64-bit mode. Progress
; reports go to port 0xE0 (IOPL 3, so CPL 3 reports too), OUT 0xE1 ends; what the gate targets
; saw is stored at RESULT (qwords) for the test to check:
;   1 set up; 2 at CPL 3;
;   3 in the CPL-0 target of a 64-bit call gate (DPL 3) called from CPL 3: RESULT+0.. CS, SS, RSP,
;     and the frame [RSP] .. [RSP+24] (RIP, CS, RSP, SS of the caller);
;   4 back at CPL 3 after RETFQ: RESULT+64.. CS, SS, RSP, ES (ES = 0x10 loaded at CPL 0 is nulled);
;   (RESULT+128, +136: the addresses after the two far CALLs)
;   5 in the CPL-3 target of a gate to a CPL-3 segment (no stack switch): RESULT+96.. CS, RSP, [RSP], [RSP+8];
;   6 back after it;
;   then faults, each reported as (vector, error code) by the CPL-0 handlers:
;   13, 0x50  far CALL through a gate with DPL 0 < CPL 3;
;   11, 0x60  far CALL through a gate that is not present;
;   13, 0x08  far JMP through the DPL-3 gate (a JMP cannot change privilege: #GP(code selector));
;   13, 0x80  far CALL through a 64-bit gate whose upper half has a nonzero type;
;   7 done.
bits 32
org 0x100000

PT     equ 0x200000
TSS    equ 0x300000
RESULT equ 0x310000
IDT    equ 0x320000
USTACK equ 0x160000
KSTACK equ 0x170000

%define ABS(l) ((l) - $$ + 0x100000)

%include "long-mode.inc"

  ; every page user-accessible (long-mode.inc maps supervisor pages)
  or dword [PT], 4
  or dword [PT + 0x1000], 4
  xor ecx, ecx
.u:
  or dword [PT + 0x2000 + rcx * 8], 4
  inc ecx
  cmp ecx, 512
  jne .u
  mov rax, cr3
  mov cr3, rax
  lgdt [gdtr64]
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov dword [TSS + 4], KSTACK   ; RSP0
  mov dword [TSS + 8], 0
  mov word [TSS + 0x66], 0x68
  mov ax, 0x30
  ltr ax
  mov rdi, IDT + 13 * 16
  mov rax, gp_handler
  call set_gate
  mov rdi, IDT + 11 * 16
  mov rax, np_handler
  call set_gate
  lidt [idtr64]
  mov rax, after_call           ; the return addresses, for the test
  mov [RESULT + 128], rax
  mov rax, after_same
  mov [RESULT + 136], rax
  mov al, 1
  out 0xe0, al
  mov rax, user1
  jmp to_user

; iretq to CPL 3 (64-bit code 0x2b, stack 0x23:USTACK, IOPL 3) at RAX
to_user:
  push 0x23
  push USTACK
  push 0x3002
  push 0x2b
  push rax
  iretq

; rdi = IDT entry, rax = handler: 64-bit interrupt gate to 0x08
set_gate:
  mov [rdi], ax
  mov word [rdi + 2], 0x08
  mov word [rdi + 4], 0x8e00
  shr rax, 16
  mov [rdi + 6], ax
  shr rax, 16
  mov [rdi + 8], eax
  mov dword [rdi + 12], 0
  ret

; CPL-0 fault handlers: report (vector, error code), continue at [next]
gp_handler:
  mov al, 13
  jmp fault_common
np_handler:
  mov al, 11
fault_common:
  out 0xe0, al
  pop rax
  out 0xe0, al
  mov ax, 0x10
  mov ds, ax
  mov rax, [next]
  jmp to_user

; ---- CPL 3 ----
user1:
  mov al, 2
  out 0xe0, al
  call far dword [rel gate_dpl3]
after_call:
  mov rdi, RESULT + 64
  mov [rdi], cs
  mov [rdi + 8], ss
  mov [rdi + 16], rsp
  mov [rdi + 24], es
  mov al, 4
  out 0xe0, al
  call far dword [rel gate_same]
after_same:
  mov al, 6
  out 0xe0, al
  mov rax, user2
  mov [next], rax
  call far dword [rel gate_dpl0]
  out 0xe1, al                  ; no fault: end the run early (the test fails)
user2:
  mov rax, user3
  mov [next], rax
  call far dword [rel gate_np]
  out 0xe1, al                  ; no fault: end the run early (the test fails)
user3:
  mov rax, user4
  mov [next], rax
  jmp far dword [rel gate_dpl3]
  out 0xe1, al                  ; no fault: end the run early (the test fails)
user4:
  mov rax, user5
  mov [next], rax
  call far dword [rel gate_badtype]
  out 0xe1, al                  ; no fault: end the run early (the test fails)
user5:
  mov al, 7
  out 0xe0, al
  out 0xe1, al
  jmp $

; the CPL-3 target of gate 0x70
user_target:
  mov rdi, RESULT + 96
  mov [rdi], cs
  mov [rdi + 8], rsp
  mov rax, [rsp]
  mov [rdi + 16], rax
  mov rax, [rsp + 8]
  mov [rdi + 24], rax
  mov al, 5
  out 0xe0, al
  o64 retf

; ---- CPL 0, through gate 0x40 ----
gate_target:
  mov rdi, RESULT
  mov [rdi], cs
  mov [rdi + 8], ss
  mov [rdi + 16], rsp
  mov rax, [rsp]
  mov [rdi + 24], rax
  mov rax, [rsp + 8]
  mov [rdi + 32], rax
  mov rax, [rsp + 16]
  mov [rdi + 40], rax
  mov rax, [rsp + 24]
  mov [rdi + 48], rax
  mov al, 3
  out 0xe0, al
  mov ax, 0x10
  mov es, ax
  o64 retf

align 8
next: dq 0
; far pointers (m16:32: the offset is ignored for a gate)
gate_dpl3:    dd 0
              dw 0x43
gate_same:    dd 0
              dw 0x73
gate_dpl0:    dd 0
              dw 0x53
gate_np:      dd 0
              dw 0x63
gate_badtype: dd 0
              dw 0x83

%macro GATE64 4 ; target, code selector, DPL, present
  dw ABS(%1) & 0xffff
  dw %2
  db 0
  db 0x0c | (%3 << 5) | (%4 << 7)
  dw (ABS(%1) >> 16) & 0xffff
  dd 0
  dd 0
%endmacro

align 16
gdt64:
  dq 0
  dq 0x00af9a000000ffff         ; 0x08 code64 DPL 0
  dq 0x00cf92000000ffff         ; 0x10 data DPL 0
  dq 0x00cffa000000ffff         ; 0x18 code32 DPL 3
  dq 0x00cff2000000ffff         ; 0x20 data DPL 3
  dq 0x00affa000000ffff         ; 0x28 code64 DPL 3
  dq 0x0000893000000067, 0      ; 0x30 64-bit TSS at 0x300000
  GATE64 gate_target, 0x08, 3, 1 ; 0x40
  GATE64 gate_target, 0x08, 0, 1 ; 0x50
  GATE64 gate_target, 0x08, 3, 0 ; 0x60
  GATE64 user_target, 0x28, 3, 1 ; 0x70
  dw ABS(gate_target) & 0xffff  ; 0x80: upper half type 0x0c (must be 0)
  dw 0x08
  db 0
  db 0xec
  dw (ABS(gate_target) >> 16) & 0xffff
  dd 0
  dd 0x0c00
gdt64_end:
gdtr64: dw gdt64_end - gdt64 - 1
  dq gdt64
idtr64: dw 256 * 16 - 1
  dq IDT
