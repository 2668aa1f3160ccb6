; SYSCALL/SYSRET in legacy 32-bit protected mode (EFER.SCE, no long mode), as AMD defines them
; (test/soft/syscall-legacy.test.ts). Entered at 0x100000 in flat 32-bit protected mode, paging
; off. Reports go to port 0xE0 (IOPL 3), OUT 0xE1 ends; RESULT (dwords):
;   1 set up; 2 at CPL 3 after SYSRET: RESULT+0.. CS, SS, EFLAGS;
;   3 at the SYSCALL target: RESULT+16.. CS, SS, EFLAGS, ECX (the return EIP); RESULT+32 the
;     address after the SYSCALL; 4 back at CPL 3 after a second SYSRET.
bits 32
org 0x100000
%include "flat32.inc"

RESULT equ 0x310000

start:
  FLAT32_RELOAD gdtr
  mov dword [RESULT + 32], after_syscall
  mov ecx, 0xc0000080           ; EFER.SCE
  rdmsr
  or eax, 1
  wrmsr
  mov ecx, 0xc0000081           ; STAR: SYSRET CS 0x18 (SS 0x20), SYSCALL CS 0x08 (SS 0x10), EIP
  mov eax, syscall_entry
  mov edx, 0x00180008
  wrmsr
  push 0x3002                   ; IOPL 3, IF clear: SYSRET sets IF
  popfd
  mov al, 1
  out 0xe0, al
  mov ecx, user
  sysret

user:
  mov edi, RESULT
  mov [edi], cs
  mov [edi + 4], ss
  pushfd
  pop dword [edi + 8]
  mov ax, ss
  mov ds, ax
  mov al, 2
  out 0xe0, al
  mov esp, 0x7000
  syscall
after_syscall:
  mov al, 4
  out 0xe0, al
  out 0xe1, al
  jmp $

syscall_entry:
  mov edi, RESULT + 16
  mov [edi], cs
  mov [edi + 4], ss
  pushfd
  pop dword [edi + 8]
  mov [edi + 12], ecx
  mov al, 3
  out 0xe0, al
  sysret

align 8
gdt:
  FLAT32_GDT_ENTRIES
gdt_end:
gdtr: dw gdt_end - gdt - 1
  dd gdt
