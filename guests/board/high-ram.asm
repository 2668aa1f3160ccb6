; A multiboot guest for RAM above 4 GiB (run it with -m 7G): the board puts RAM beyond the
; 32-bit MMIO hole at 4 GiB, in host memory pieces of 2 GiB (4-6 GiB and 6-8 GiB here). The guest
; identity-maps 8 GiB with 2 MiB pages, writes a marker at each end of each piece and of low RAM,
; reads them back, writes a quadword across the boundary between the two high pieces, and checks
; that low RAM saw none of it. It prints "high ram ok" and writes 1 to the debug-exit port, or
; prints "high ram bad N" (N: the failed check) and writes 2.
bits 32
org 0x100000

MB_MAGIC   equ 0x1badb002
MB_FLAGS   equ 0x00010002            ; memory info, a.out kludge
DEBUG_EXIT equ 0x501
GIB        equ 0x40000000

header:
  dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
  dd header, header, load_end, bss_end, start32

start32:
  mov esp, stack_top
  ; PML4[0] -> PDPT; PDPT[0..7] -> 8 page directories; 4096 2 MiB pages = 8 GiB
  mov edi, pml4
  mov ecx, (2 + 8) * 4096 / 4
  xor eax, eax
  rep stosd
  mov dword [pml4], pdpt + 3
  mov edi, pdpt
  mov eax, pds + 3
  mov ecx, 8
.pdpt:
  mov [edi], eax
  add eax, 4096
  add edi, 8
  loop .pdpt
  mov edi, pds
  mov eax, 0x83                      ; present, writable, 2 MiB
  xor edx, edx                       ; bits 32+ of the physical address
  mov ecx, 4096
.pd:
  mov [edi], eax
  mov [edi + 4], edx
  add eax, 0x200000
  adc edx, 0
  add edi, 8
  loop .pd
  mov eax, pml4
  mov cr3, eax
  mov eax, cr4
  or eax, 0x20                       ; PAE
  mov cr4, eax
  mov ecx, 0xc0000080                ; EFER.LME
  rdmsr
  or eax, 0x100
  wrmsr
  mov eax, cr0
  or eax, 0x80000001                 ; PG, PE
  mov cr0, eax
  lgdt [gdt_desc]
  jmp 0x08:start64

bits 64
start64:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov rsp, stack_top

  ; markers: last quadword of low RAM, both ends of each high piece
  mov rax, 0x1111111111111111
  mov rbx, 3 * GIB - 8
  mov [rbx], rax
  mov rax, 0x2222222222222222
  mov rbx, 4 * GIB
  mov [rbx], rax
  mov rax, 0x3333333333333333
  mov rbx, 6 * GIB - 8
  mov [rbx], rax
  mov rax, 0x4444444444444444
  mov rbx, 6 * GIB
  mov [rbx], rax
  mov rax, 0x5555555555555555
  mov rbx, 8 * GIB - 8
  mov [rbx], rax

  mov cl, '1'
  mov rax, 0x1111111111111111
  mov rbx, 3 * GIB - 8
  cmp [rbx], rax
  jne bad
  mov cl, '2'
  mov rax, 0x2222222222222222
  mov rbx, 4 * GIB
  cmp [rbx], rax
  jne bad
  mov cl, '3'
  mov rax, 0x3333333333333333
  mov rbx, 6 * GIB - 8
  cmp [rbx], rax
  jne bad
  mov cl, '4'
  mov rax, 0x4444444444444444
  mov rbx, 6 * GIB
  cmp [rbx], rax
  jne bad
  mov cl, '5'
  mov rax, 0x5555555555555555
  mov rbx, 8 * GIB - 8
  cmp [rbx], rax
  jne bad

  ; a quadword across the boundary between the pieces: 4 bytes in each
  mov cl, '6'
  mov rax, 0x0123456789abcdef
  mov rbx, 6 * GIB - 4
  mov [rbx], rax
  cmp [rbx], rax
  jne bad
  mov cl, '7'
  mov eax, [rbx - 4]                 ; the low half of marker 3, untouched
  cmp eax, 0x33333333
  jne bad
  mov eax, [rbx + 8]                 ; the high half of marker 4, untouched
  cmp eax, 0x44444444
  jne bad

  ; low RAM saw none of it: addresses a piece would alias if it were mapped twice
  mov cl, '8'
  xor eax, eax
  mov rbx, 1 * GIB
  cmp [rbx], rax
  jne bad
  mov rbx, 2 * GIB
  cmp [rbx], rax
  jne bad
  mov rbx, 2 * GIB - 8
  cmp [rbx], rax
  jne bad

  mov rsi, ok_text
  call puts
  mov al, 1
  jmp exit

bad:
  mov rsi, bad_text
  call puts
  mov al, cl
  call putc
  mov al, 10
  call putc
  mov al, 2
exit:
  mov dx, DEBUG_EXIT
  out dx, al
  jmp $

%include "serial64.inc"

ok_text db "high ram ok", 10, 0
bad_text db "high ram bad ", 0

align 8
gdt:
  dq 0
  dq 0x00af9a000000ffff              ; 0x08: 64-bit code
  dq 0x00cf92000000ffff              ; 0x10: data
gdt_desc:
  dw gdt_desc - gdt - 1
  dq gdt
load_end:

section .bss follows=.text nobits
alignb 4096
pml4: resb 4096
pdpt: resb 4096
pds:  resb 8 * 4096
      resb 4096
stack_top:
bss_end:
