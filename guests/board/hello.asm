; A multiboot (a.out kludge) guest for the board tests. It enters in 32-bit protected mode as
; multiboot says, switches to long mode at once (this machine's KVM, PVM, cannot emulate a
; 32-bit IRET at CPL0), prints a banner and the RTC's date on COM1, then echoes what it
; receives, interrupt-driven: it waits in HLT for IRQ 4 through the 8259. Command letters:
;   'r' resets through the i8042, 'e' then a digit writes the digit to the debug-exit port,
;   'f' triple-faults (an exception with an empty IDT).
bits 32
org 0x100000

MB_MAGIC   equ 0x1badb002
MB_FLAGS   equ 0x00010002            ; memory info, a.out kludge
PIC1_CMD   equ 0x20
PIC1_DATA  equ 0x21
PIC2_CMD   equ 0xa0
PIC2_DATA  equ 0xa1
IRQ_BASE   equ 0x20                  ; IRQs 0-7 remapped to vectors 0x20-0x27
DEBUG_EXIT equ 0x501

header:
  dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
  dd header, header, load_end, bss_end, start32

start32:
  mov esp, stack_top
  ; identity-map the first 1 GiB with 2 MiB pages
  mov edi, pml4
  mov ecx, 3 * 4096 / 4
  xor eax, eax
  rep stosd
  mov dword [pml4], pdpt + 3
  mov dword [pdpt], pd + 3
  mov edi, pd
  mov eax, 0x83
  mov ecx, 512
.map:
  mov [edi], eax
  add eax, 0x200000
  add edi, 8
  loop .map
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
  ; IDT: every vector to a handler that acknowledges the PIC and returns
  mov rdi, idt
  mov ecx, 256
  mov rax, isr_default
.fill:
  call set_gate
  loop .fill
  lidt [idt_desc]
  ; 8259: ICW1-4, master at 0x20, slave at 0x28, only IRQ 4 unmasked
  mov al, 0x11
  out PIC1_CMD, al
  out PIC2_CMD, al
  mov al, IRQ_BASE
  out PIC1_DATA, al
  mov al, IRQ_BASE + 8
  out PIC2_DATA, al
  mov al, 4
  out PIC1_DATA, al
  mov al, 2
  out PIC2_DATA, al
  mov al, 1
  out PIC1_DATA, al
  out PIC2_DATA, al
  mov al, 0xef
  out PIC1_DATA, al
  mov al, 0xff
  out PIC2_DATA, al
  ; UART: 8N1, FIFO interrupting at 1 byte, OUT2, receive interrupt
  mov dx, COM1 + 3
  mov al, 0x03
  out dx, al
  mov dx, COM1 + 2
  mov al, 0x07
  out dx, al
  mov dx, COM1 + 4
  mov al, 0x0b
  out dx, al
  mov dx, COM1 + 1
  mov al, 0x01
  out dx, al
  mov rsi, banner
  call puts
  ; the RTC's year and month, in BCD
  mov al, 0x09
  out 0x70, al
  in al, 0x71
  call puthex
  mov al, '-'
  call putc
  mov al, 0x08
  out 0x70, al
  in al, 0x71
  call puthex
  mov al, 10
  call putc
  mov rsi, prompt
  call puts

main:
  call getc
  cmp al, 'r'
  je reset
  cmp al, 'e'
  je debug_exit
  cmp al, 'f'
  je triple_fault
  call putc
  jmp main

reset:
  mov al, 0xfe
  out 0x64, al
  jmp $

debug_exit:
  call getc
  sub al, '0'
  mov dx, DEBUG_EXIT
  out dx, al
  jmp $

triple_fault:                        ; #UD with an empty IDT: #GP, #DF, shutdown
  lidt [null_idt]                    ; (UD2 rather than INT3, which PVM's emulator fails on)
  ud2

; waits for a received byte: HLT until the receive interrupt
getc:
  cli
  mov dx, COM1 + 5
  in al, dx
  test al, 1
  jnz .ready
  sti
  hlt
  jmp getc
.ready:
  mov dx, COM1
  in al, dx
  sti
  ret

%include "serial64.inc"
%include "idt64.inc"

puthex:
  push rax
  shr al, 4
  call .digit
  pop rax
  and al, 0x0f
.digit:
  cmp al, 10
  jb .num
  add al, 'a' - 10
  jmp putc
.num:
  add al, '0'
  jmp putc

isr_default:
  push rax
  mov al, 0x20                       ; EOI
  out PIC1_CMD, al
  pop rax
  iretq

banner db "hello from a multiboot guest", 10, "rtc ", 0
prompt db "echo> ", 0

align 8
gdt:
  dq 0
  dq 0x00af9a000000ffff              ; 0x08: 64-bit code
  dq 0x00cf92000000ffff              ; 0x10: data
gdt_desc:
  dw gdt_desc - gdt - 1
  dq gdt
idt_desc:
  dw 256 * 16 - 1
  dq idt
null_idt:
  dw 0
  dq 0
load_end:

section .bss follows=.text nobits
alignb 4096
pml4: resb 4096
pdpt: resb 4096
pd:   resb 4096
idt:  resb 256 * 16
      resb 4096
stack_top:
bss_end:
