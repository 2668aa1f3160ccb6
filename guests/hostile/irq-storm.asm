; A guest that asks for an interrupt storm and takes it (tsvmm run --flat 0x100000:protected32):
; the 8259s initialized with the master's vectors at 0x08 (over the CPU's exceptions, as the
; BIOS leaves them) and nothing masked; PIT counter 0 in the rate generator with a count of 1
; (an IRQ 0 every tick of its 1.19 MHz clock, were it honoured); the RTC's periodic interrupt
; at its fastest rate; COM1's THRE interrupt and a waiting i8042 byte with their IRQs on. Every
; vector goes to a handler that acknowledges both 8259s and returns; between interrupts the
; guest counts and prints a '.' every 2^16 counts. It never ends by itself: the host must stay
; responsive (--timeout ends it) with bounded memory, however many interrupts are owed.
bits 32
org 0x100000
  jmp start
%include "flat.inc"

IDT_BASE equ 0x80000

start:
  cli
  mov edi, IDT_BASE                  ; every vector: an interrupt gate to isr (the board's 32-bit code, 0x10)
  mov ecx, 256
.fill:
  mov eax, isr
  mov [edi], ax
  mov word [edi + 2], 0x10
  mov word [edi + 4], 0x8e00
  shr eax, 16
  mov [edi + 6], ax
  add edi, 8
  loop .fill
  lidt [idt_desc]

  mov al, 0x11                       ; ICW1: edge, cascade, ICW4
  out 0x20, al
  out 0xa0, al
  mov al, 0x08                       ; ICW2: the master's IRQs on vectors 8-15, the exceptions' own
  out 0x21, al
  mov al, 0x70
  out 0xa1, al
  mov al, 0x04                       ; ICW3
  out 0x21, al
  mov al, 0x02
  out 0xa1, al
  mov al, 0x01                       ; ICW4: 8086
  out 0x21, al
  out 0xa1, al
  xor al, al                         ; nothing masked
  out 0x21, al
  out 0xa1, al

  mov al, 0x34                       ; PIT counter 0: LSB then MSB, mode 2, count 1
  out 0x43, al
  mov al, 1
  out 0x40, al
  xor al, al
  out 0x40, al

  mov al, 0x0a                       ; RTC register A: rate 3 (8 kHz)
  out 0x70, al
  mov al, 0x23
  out 0x71, al
  mov al, 0x0b                       ; register B: periodic, update-ended and alarm interrupts
  out 0x70, al
  mov al, 0x72
  out 0x71, al

  call com1_init
  mov dx, COM1 + 1                   ; every UART interrupt, OUT2 on
  mov al, 0x0f
  out dx, al
  mov dx, COM1 + 4
  mov al, 0x0b
  out dx, al

  mov al, 0xd2                       ; i8042: a byte "from the keyboard", IRQ 1 on
  out 0x64, al
  mov al, 0x1c
  out 0x60, al

  xor ebx, ebx
  sti
.count:
  inc ebx
  test ebx, 0xffff
  jnz .count
  mov al, '.'
  call putc
  jmp .count

isr:
  push eax
  mov al, 0x20                       ; non-specific EOI, both
  out 0xa0, al
  out 0x20, al
  pop eax
  iret

idt_desc:
  dw 256 * 8 - 1
  dd IDT_BASE
