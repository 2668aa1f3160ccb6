; A guest that sprays random bytes over PAGES pages of its RAM and jumps into them, again and
; again (tsvmm run --flat 0x100000:long64, RAM_TOP bytes of RAM): each round fills the pages with
; the next words of a xorshift64 generator seeded with SEED and jumps to a random byte among
; them. Whatever the random code does first of what the CPU refuses (an exception) starts the
; next round, over the code the CPU decoded last round: every vector goes to one handler, on its
; own stack (IST1), that puts the stack, segments and flags back. Only RAM is mapped (2 MiB pages
; up to RAM_TOP), so a wild access faults like the rest rather than reaching unbacked space.
; After ROUNDS rounds the guest prints "sprayed" and ends through the debug-exit port with 0x2a
; (exit status 0x55). The random code may of course undo any of this (overwrite the handler, the
; tables, reprogram devices, halt): however it ends, it ends with a reason.
bits 64
org 0x100000
  jmp start
%include "flat.inc"

AREA      equ 0x200000
AREA_LEN  equ PAGES * 4096           ; a power of 2
STACK_TOP equ 0x70000
IST_TOP   equ 0x7f000
CODE_SEL  equ 0x08
DATA_SEL  equ 0x10
TSS_SEL   equ 0x18

start:
  cli
  mov edi, idt                       ; interrupt gates, DPL 0, IST1
  mov ecx, 256
.idt:
  mov eax, round
  mov [rdi], ax
  mov word [rdi + 2], CODE_SEL
  mov word [rdi + 4], 0x8e01
  shr eax, 16
  mov [rdi + 6], ax
  mov qword [rdi + 8], 0             ; offset 63:32 (the handler is below 4 GiB)
  add edi, 16
  loop .idt
  mov eax, tss                       ; the TSS descriptor's base (below 16 MiB)
  mov [gdt.tss + 2], ax
  shr eax, 16
  mov [gdt.tss + 4], al
  mov edi, pd                        ; 2 MiB pages up to RAM_TOP; nothing else is present
  mov eax, 0x83                      ; present, writable, 2 MiB
  mov ecx, RAM_TOP >> 21
.pd:
  mov [rdi], rax
  add eax, 1 << 21
  add edi, 8
  loop .pd
  mov eax, pdpt + 3
  mov [pml4], rax
  mov eax, pd + 3
  mov [pdpt], rax
  lgdt [gdt_desc]
  lidt [idt_desc]
  mov eax, pml4
  mov cr3, rax
  push CODE_SEL
  push round
  retfq                              ; CS from our own GDT
round:
  mov ax, DATA_SEL
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov rsp, STACK_TOP
  push 2                             ; interrupts off, no single-step, DF clear
  popf
  mov ax, TSS_SEL                    ; (again: the random code may have changed TR)
  and byte [gdt.tss + 5], ~2         ; available, so that LTR takes it
  ltr ax
  inc dword [rounds]
  cmp dword [rounds], ROUNDS
  jae done
  mov rax, [seed]
  mov edi, AREA
  mov ecx, AREA_LEN / 8
.fill:
  mov rdx, rax                       ; xorshift64 (13, 7, 17)
  shl rdx, 13
  xor rax, rdx
  mov rdx, rax
  shr rdx, 7
  xor rax, rdx
  mov rdx, rax
  shl rdx, 17
  xor rax, rdx
  mov [rdi], rax
  add rdi, 8
  loop .fill
  mov [seed], rax
  shr rax, 20
  and eax, AREA_LEN - 1
  add eax, AREA
  jmp rax
done:
  call com1_init
  mov esi, sprayed
  call puts
  DEBUG_EXIT_WITH 0x2a

sprayed: db "sprayed", 10, 0
align 8
seed: dq SEED
rounds: dd 0
gdt_desc:
  dw gdt.end - gdt - 1
  dq gdt
idt_desc:
  dw 256 * 16 - 1
  dq idt
align 8
gdt:
  dq 0
  dq 0x00209a0000000000              ; 0x08: 64-bit code, DPL 0
  dq 0x0000920000000000              ; 0x10: data
.tss:
  dw 103                             ; 0x18: 64-bit TSS (base filled in at start)
  dw 0
  db 0, 0x89, 0, 0
  dq 0
.end:
align 8
tss:
  times 36 db 0
  dq IST_TOP                         ; IST1
  times 104 - ($ - tss) db 0
align 4096
pml4: times 4096 db 0
pdpt: times 4096 db 0
pd:   times 4096 db 0
idt:  times 256 * 16 db 0
