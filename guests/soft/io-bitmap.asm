; The TSS I/O permission bitmap (test/soft/io-bitmap.test.ts). Entered at 0x100000 in flat 32-bit
; protected mode, paging off; runs the checks at CPL 3 with IOPL 0, so every port access goes
; through the bitmap of the 32-bit TSS (map at TSS+0x68, ports 0-0x3FF, limit 0xE8 = the map plus
; the trailing 0xFF byte). Allowed ports: 0xE0 (reports) and 0xE1 (end), 0x70-0x73, 0x80, 0x3FF.
; Reports go to port 0xE0; each #GP is reported by the CPL-0 handler as (13, error code), and the
; test continues at [next]:
;   1 set up; 2 at CPL 3; OUT 0x70 dword (allowed: an I/O exit); IN 0x80 (allowed);
;   #GP: OUT 0xE2; #GP: OUT DX=0x72 dword (port 0x74 denied); OUT DX=0x71 word (allowed);
;   #GP: OUT DX=0x500 (beyond the TSS limit); #GP: OUTSB to 0xE2; IN DX=0x3FF (allowed: the two
;   bitmap bytes read, 0xE7-0xE8, are within the limit); 7 done.
bits 32
org 0x100000
%include "flat32.inc"

TSS    equ 0x300000
IDT    equ 0x320000
USTACK equ 0x7000
KSTACK equ 0x9000

start:
  FLAT32_RELOAD gdtr
  mov dword [TSS + 4], KSTACK
  mov dword [TSS + 8], 0x10
  mov word [TSS + 0x66], 0x68
  mov edi, TSS + 0x68           ; deny everything, then allow the listed ports
  mov ecx, 0x81
  mov al, 0xff
  rep stosb
%macro ALLOW 1
  mov eax, %1
  btr [TSS + 0x68], eax         ; (a register bit offset addresses the whole map)
%endmacro
  ALLOW 0xe0
  ALLOW 0xe1
  ALLOW 0x70
  ALLOW 0x71
  ALLOW 0x72
  ALLOW 0x73
  ALLOW 0x80
  ALLOW 0x3ff
  mov ax, 0x28
  ltr ax
  mov edi, IDT + 13 * 8
  mov eax, gp_handler
  mov [edi], ax
  mov word [edi + 2], 0x08
  mov word [edi + 4], 0x8e00
  shr eax, 16
  mov [edi + 6], ax
  lidt [idtr]
  mov al, 1
  out 0xe0, al
  mov eax, user1
  jmp to_user

; iretd to CPL 3 with IOPL 0 at EAX
to_user:
  push 0x23
  push USTACK
  push 0x0002
  push 0x1b
  push eax
  iretd

gp_handler:
  mov al, 13
  out 0xe0, al
  pop eax
  out 0xe0, al
  mov eax, [next]
  jmp to_user

%macro EXPECT_GP 1 ; continue at %1 after the #GP of the next instruction
  mov dword [next], %1
%endmacro

user1:
  mov ax, 0x23
  mov ds, ax
  mov es, ax
  mov al, 2
  out 0xe0, al
  mov dx, 0x70
  mov eax, 0x12345678
  out dx, eax
  in al, 0x80
  EXPECT_GP user2
  out 0xe2, al
  out 0xe1, al                  ; no fault: end the run early (the test fails)
user2:
  EXPECT_GP user3
  mov dx, 0x72
  out dx, eax
  out 0xe1, al                  ; no fault: end the run early (the test fails)
user3:
  mov dx, 0x71
  mov ax, 0xbeef
  out dx, ax
  EXPECT_GP user4
  mov dx, 0x500
  out dx, al
  out 0xe1, al                  ; no fault: end the run early (the test fails)
user4:
  EXPECT_GP user5
  mov dx, 0xe2
  mov esi, next
  outsb
  out 0xe1, al                  ; no fault: end the run early (the test fails)
user5:
  mov dx, 0x3ff
  in al, dx
  mov al, 7
  out 0xe0, al
  out 0xe1, al
  jmp $

align 4
next: dd 0

align 8
gdt:
  FLAT32_GDT_ENTRIES
  dq 0x00008930000000e8         ; 0x28 32-bit TSS at 0x300000, limit 0xE8
gdt_end:
gdtr: dw gdt_end - gdt - 1
  dd gdt
idtr: dw 256 * 8 - 1
  dd IDT
