; A guest that reads and writes where nothing is mapped, across the 32-bit guest-physical space
; (tsvmm run --flat 0x100000:long64, which maps the first 4 GiB): one dword read and one junk
; dword write every 256 KiB from RAM_TOP (the end of RAM, given at assembly) to 4 GiB, through
; the MMIO hole, then on every page of the 4 MiB below 4 GiB. Offset 0 of each page only, so that a
; device the backend keeps there (KVM's I/O APIC at 0xFEC00000, local APIC at 0xFEE00000) sees
; register 0 (IOREGSEL, reserved). The host must count and log these in bounded memory and lines.
; Ends through the debug-exit port with 0x2a (exit status 0x55) after printing "mmio swept".
bits 64
org 0x100000
  jmp start
%include "flat.inc"

FOUR_GIB equ 0x100000000

start:
  cli
  mov rbx, RAM_TOP
  mov ecx, 0x40000                   ; 256 KiB steps
  call sweep
  mov rbx, FOUR_GIB - 0x400000
  mov ecx, 0x1000                    ; then pages
  call sweep
  call com1_init
  mov esi, swept
  call puts
  DEBUG_EXIT_WITH 0x2a

; From RBX to 4 GiB in steps of RCX bytes: a read, then a junk write, at each.
sweep:
  mov rdx, FOUR_GIB
.step:
  mov eax, [rbx]
  mov eax, ebx
  not eax
  mov [rbx], eax
  add rbx, rcx
  cmp rbx, rdx
  jb .step
  ret

swept: db "mmio swept", 10, 0
