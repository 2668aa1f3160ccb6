; A guest whose hot loop overwrites its own code (tsvmm run --flat 0x100000:long64): it fills
; memory with NOPs, 8 bytes at a time, upwards from 0xF0000 through the page that holds the loop
; and up to `stop`. By the time it gets there the loop has run thousands of times (the soft CPU
; has compiled it). The loop is two 8-byte pieces, each whole instructions: the store and the
; add, then LOOP. A CPU that sees its stores in the code at once runs the NOPs that replace the
; first piece and LOOPs on until the count runs out; one that finishes what it had fetched first
; stores the second piece too. Either way it goes on down NOPs to `stop`, and ends through the
; debug-exit port with 0x2a (exit status 0x55).
bits 64
LOAD equ 0x100000
org LOAD
  jmp start
%include "flat.inc"

FIRST equ 0xf0000

start:
  cli
  mov edi, FIRST
  mov rax, 0x9090909090909090
  mov ecx, ((stop - $$) + (LOAD - FIRST)) / 8
align 8, nop
.fill:
  mov [rdi], rax                     ; 3 bytes
  add rdi, 8                         ; 4
  nop                                ; 1
  loop .fill                         ; 2, then 6 NOPs
align 8, nop
stop:
  DEBUG_EXIT_WITH 0x2a
