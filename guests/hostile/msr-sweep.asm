; A guest that reads every MSR index in a few ranges and writes back what it read, or, where the
; read faults (#GP: no such MSR), writes junk to it too (tsvmm run --flat 0x100000:long64): the
; architectural MSRs 0-0x1FFF, the hypervisor range 0x40000000-0x400000FF, AMD's 0xC0000000-
; 0xC0001FFF and 0xC0010000-0xC0011FFF. The #GP handler steps over the RDMSR/WRMSR and counts.
; The host must answer an MSR it does not know with #GP, in bounded memory and log lines.
; Ends through the debug-exit port with 0x2a (exit status 0x55) after printing "msrs swept".
bits 64
org 0x100000
  jmp start
%include "flat.inc"

IDT_BASE equ 0x80000
GP_VECTOR equ 13

start:
  cli
  mov edi, IDT_BASE + GP_VECTOR * 16 ; one gate: #GP (a fault anywhere else shuts down)
  mov eax, gp_handler
  mov [rdi], ax
  mov word [rdi + 2], 0x08
  mov word [rdi + 4], 0x8e00
  shr eax, 16
  mov [rdi + 6], ax
  mov qword [rdi + 8], 0
  lidt [idt_desc]
  mov rsi, ranges
.range:
  mov ecx, [rsi]
  mov ebp, [rsi + 4]
  test ebp, ebp
  jz .done
.msr:
  mov byte [faulted], 0
  rdmsr
  cmp byte [faulted], 0
  je .known
  mov eax, ecx                       ; no such MSR: junk
  not eax
  mov edx, ecx
.known:
  wrmsr
  inc ecx
  cmp ecx, ebp
  jne .msr
  add rsi, 8
  jmp .range
.done:
  call com1_init
  mov esi, swept
  call puts
  DEBUG_EXIT_WITH 0x2a

gp_handler:
  add qword [rsp + 8], 2             ; past the 2-byte RDMSR or WRMSR (the error code is at [rsp])
  mov byte [faulted], 1
  add rsp, 8
  iretq

align 8
idt_desc:
  dw 256 * 16 - 1
  dq IDT_BASE
ranges:
  dd 0, 0x2000
  dd 0x40000000, 0x40000100
  dd 0xc0000000, 0xc0002000
  dd 0xc0010000, 0xc0012000
  dd 0, 0
faulted: db 0
swept: db "msrs swept", 10, 0
