; A guest that runs code starting at every byte of PAGES pages of RAM (tsvmm run --flat
; 0x100000:long64): each page holds NOPs and a RET at its end, and the guest calls each of their
; addresses in turn. Each call runs down the NOPs from a byte never started at before, so the CPU
; meets code it has not decoded at that address: 4096 blocks per page, each of up to 64 NOPs (the
; soft CPU's longest block), some 260,000 instructions to decode per page. A CPU that keeps what
; it decoded must still bound it. Ends through the debug-exit port with 0x2a (exit status 0x55)
; after printing "sprayed".
bits 64
org 0x100000
  jmp start
%include "flat.inc"

FIRST equ 0x200000
LAST  equ FIRST + PAGES * 4096

start:
  cli
  cld
  mov edi, FIRST
.fill:
  mov al, 0x90                       ; NOP
  mov ecx, 4095
  rep stosb
  mov byte [rdi], 0xc3               ; RET
  inc edi
  cmp edi, LAST
  jb .fill
  mov ebx, FIRST
.call:
  call rbx
  inc ebx
  cmp ebx, LAST
  jb .call
  call com1_init
  mov esi, sprayed
  call puts
  DEBUG_EXIT_WITH 0x2a

sprayed: db "sprayed", 10, 0
