; Call gates in 32-bit protected mode (test/soft/call-gate.test.ts). Entered at 0x100000 in flat
; 32-bit protected mode, paging off. Reports go to port 0xE0 (IOPL 3), OUT 0xE1 ends; what the
; gate targets saw is stored at RESULT (dwords):
;   1 set up; 2 at CPL 3;
;   3 in the CPL-0 target of a 32-bit call gate (DPL 3, 2 parameters) called from CPL 3:
;     RESULT+0.. CS, SS, ESP, [ESP] .. [ESP+20] (EIP, CS, the 2 parameters, ESP, SS of the caller);
;   4 back at CPL 3 after RETF 8: RESULT+64.. CS, SS, ESP, ES (ES = 0x10 loaded at CPL 0 is nulled);
;   5 in a conforming DPL-0 segment through a gate, still at CPL 3: RESULT+96.. CS, ESP, [ESP], [ESP+4];
;   6 back after it;
;   then faults, each reported as (vector, error code) by the CPL-0 handlers:
;   13, 0x48  far CALL through a gate with DPL 0 < CPL 3;
;   13, 0x08  far JMP through the DPL-3 gate to DPL-0 code;
;   11, 0x50  far CALL through a gate that is not present;
;   7 done. RESULT+128, +132: the addresses after the two far CALLs.
bits 32
org 0x100000
%include "flat32.inc"

TSS    equ 0x300000
RESULT equ 0x310000
IDT    equ 0x320000
USTACK equ 0x7000
KSTACK equ 0x9000

start:
  FLAT32_RELOAD gdtr32
  mov dword [TSS + 4], KSTACK   ; ESP0
  mov dword [TSS + 8], 0x10     ; SS0
  mov word [TSS + 0x66], 0x68
  mov ax, 0x28
  ltr ax
  mov edi, IDT + 13 * 8
  mov eax, gp_handler
  call set_gate
  mov edi, IDT + 11 * 8
  mov eax, np_handler
  call set_gate
  lidt [idtr32]
  mov dword [RESULT + 128], after_call
  mov dword [RESULT + 132], after_conf
  mov al, 1
  out 0xe0, al
  mov eax, user1
  jmp to_user

; iretd to CPL 3 (code 0x1b, stack 0x23:USTACK, IOPL 3) at EAX
to_user:
  push 0x23
  push USTACK
  push 0x3002
  push 0x1b
  push eax
  iretd

; edi = IDT entry, eax = handler: 32-bit interrupt gate to 0x08
set_gate:
  mov [edi], ax
  mov word [edi + 2], 0x08
  mov word [edi + 4], 0x8e00
  shr eax, 16
  mov [edi + 6], ax
  ret

gp_handler:
  mov al, 13
  jmp fault_common
np_handler:
  mov al, 11
fault_common:
  out 0xe0, al
  pop eax
  out 0xe0, al
  mov eax, [next]
  jmp to_user

; ---- CPL 3 ----
user1:
  mov ax, 0x23
  mov ds, ax
  mov es, ax
  mov al, 2
  out 0xe0, al
  push 0x11111111
  push 0x22222222
  call 0x33:0
after_call:
  mov edi, RESULT + 64
  mov [edi], cs
  mov [edi + 4], ss
  mov [edi + 8], esp
  mov [edi + 12], es
  mov al, 4
  out 0xe0, al
  call 0x5b:0
after_conf:
  mov al, 6
  out 0xe0, al
  mov dword [next], user2
  call 0x4b:0
  out 0xe1, al                  ; no fault: end the run early (the test fails)
user2:
  mov dword [next], user3
  jmp 0x33:0
  out 0xe1, al                  ; no fault: end the run early (the test fails)
user3:
  mov dword [next], user4
  call 0x53:0
  out 0xe1, al                  ; no fault: end the run early (the test fails)
user4:
  mov al, 7
  out 0xe0, al
  out 0xe1, al
  jmp $

; ---- CPL 0 through gate 0x30 ----
gate32_target:
  mov edi, RESULT
  mov [edi], cs
  mov [edi + 4], ss
  mov [edi + 8], esp
  mov eax, [esp]
  mov [edi + 12], eax
  mov eax, [esp + 4]
  mov [edi + 16], eax
  mov eax, [esp + 8]
  mov [edi + 20], eax
  mov eax, [esp + 12]
  mov [edi + 24], eax
  mov eax, [esp + 16]
  mov [edi + 28], eax
  mov eax, [esp + 20]
  mov [edi + 32], eax
  mov al, 3
  out 0xe0, al
  mov ax, 0x10
  mov es, ax
  retf 8

; ---- conforming DPL-0 code, entered at CPL 3 through gate 0x58 ----
conf_target:
  mov edi, RESULT + 96
  mov [edi], cs
  mov [edi + 4], esp
  mov eax, [esp]
  mov [edi + 8], eax
  mov eax, [esp + 4]
  mov [edi + 12], eax
  mov al, 5
  out 0xe0, al
  retf

align 4
next: dd 0

%define ABS(l) ((l) - $$ + 0x100000)
%macro GATE32 5 ; target, code selector, DPL, present, parameter count
  dw ABS(%1) & 0xffff
  dw %2
  db %5
  db 0x0c | (%3 << 5) | (%4 << 7)
  dw (ABS(%1) >> 16) & 0xffff
%endmacro

align 8
gdt32:
  FLAT32_GDT_ENTRIES
  dq 0x0000893000000067         ; 0x28 32-bit TSS at 0x300000
  GATE32 gate32_target, 0x08, 3, 1, 2 ; 0x30
  dq 0                          ; 0x38
  dq 0                          ; 0x40
  GATE32 gate32_target, 0x08, 0, 1, 2 ; 0x48
  GATE32 gate32_target, 0x08, 3, 0, 2 ; 0x50
  GATE32 conf_target, 0x60, 3, 1, 0   ; 0x58
  dq 0x00cf9e000000ffff         ; 0x60 conforming code32 DPL 0
gdt32_end:
gdtr32: dw gdt32_end - gdt32 - 1
  dd gdt32
idtr32: dw 256 * 8 - 1
  dd IDT
