; CPU-bound 64-bit guest for bench/soft-mips.ts: sieve of Eratosthenes, bitwise CRC32 and a qword
; memcpy loop, repeated ITER times. Booted as a multiboot image (flat, a.out kludge) by QEMU, or
; entered at start32 in flat 32-bit protected mode by the soft CPU: it builds identity-mapped 2 MiB
; pages over 1 GiB, enters long mode itself, and ends with OUT to the isa-debug-exit port 0xf4.
; The wrapper that includes this file defines ITER.
bits 32
org 0x100000

%ifndef ITER
%define ITER 10
%endif
SIEVE_N equ 8192
BUF     equ 0x300000
DST     equ 0x340000
PT      equ 0x200000

mb_header:
  dd 0x1BADB002, 0x00010000, -(0x1BADB002 + 0x00010000)
  dd mb_header, 0x100000, 0, 0, start32

%include "long-mode.inc"
  mov r15, ITER
.outer:
  call sieve
  call crc
  call memcpy
  dec r15
  jnz .outer
  mov dx, 0xf4
  xor eax, eax
  out dx, eax
  hlt

sieve:
  xor ecx, ecx
.init:
  mov byte [BUF + rcx], 1
  inc ecx
  cmp ecx, SIEVE_N
  jb .init
  mov ebx, 2
.loop:
  cmp byte [BUF + rbx], 0
  je .next
  mov eax, ebx
  imul eax, ebx
.mark:
  mov byte [BUF + rax], 0
  add eax, ebx
  cmp eax, SIEVE_N
  jb .mark
.next:
  inc ebx
  mov eax, ebx
  imul eax, ebx
  cmp eax, SIEVE_N
  jb .loop
  ret

crc:
  mov eax, -1
  mov rsi, BUF
  mov ecx, 1024
.byte:
  movzx edx, byte [rsi]
  xor eax, edx
  mov edx, 8
.bit:
  shr eax, 1
  jnc .nox
  xor eax, 0xEDB88320
.nox:
  dec edx
  jnz .bit
  inc rsi
  dec ecx
  jnz .byte
  not eax
  mov [DST - 8], eax
  ret

memcpy:
  mov rsi, BUF
  mov rdi, DST
  mov ecx, 1024
.l:
  mov rax, [rsi]
  mov [rdi], rax
  add rsi, 8
  add rdi, 8
  dec ecx
  jnz .l
  ret
