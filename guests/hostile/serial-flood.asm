; A guest that floods COM1 forever: the bytes 0, 1, ..., 255, 0, 1, ... as fast as the UART takes
; them. The host must stay bounded (its memory, its buffers) and responsive (stop, timeouts,
; Ctrl-A x) however fast the guest writes and however slowly the host's reader reads. Modes:
;   default          polls LSR.THRE before each byte, as a simple driver does: no byte is lost
;   -DTHRE_IRQ       waits in HLT for the THRE interrupt, then writes a FIFO's worth (16 bytes)
;   -DBLIND          never looks at LSR: bytes written to a full transmit FIFO are lost
bits 32
org 0x100000
%include "../board/multiboot64.inc"

COM1      equ 0x3f8
PIC1_CMD  equ 0x20
PIC1_DATA equ 0x21
PIC2_CMD  equ 0xa0
PIC2_DATA equ 0xa1

main64:
  ; UART: 8N1, FIFOs on and cleared
  mov dx, COM1 + 3
  mov al, 0x03
  out dx, al
  mov dx, COM1 + 2
  mov al, 0x07
  out dx, al
%ifdef THRE_IRQ
  ; IDT: every vector to a handler that acknowledges the PIC; 8259 with only IRQ 4 unmasked
  mov rdi, idt
  mov ecx, 256
  mov rax, isr
.fill:
  call set_gate
  loop .fill
  lidt [idt_desc]
  mov al, 0x11
  out PIC1_CMD, al
  out PIC2_CMD, al
  mov al, 0x20
  out PIC1_DATA, al
  mov al, 0x28
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
  mov dx, COM1 + 4                   ; OUT2: the IRQ reaches the PIC
  mov al, 0x0b
  out dx, al
  mov dx, COM1 + 1                   ; THRE interrupt
  mov al, 0x02
  out dx, al
%endif
  xor ebx, ebx                       ; BL: the next byte

flood:
%ifdef THRE_IRQ
  cli
  mov dx, COM1 + 5
  in al, dx
  test al, 0x20
  jnz .burst
  sti
  hlt                                ; until the THRE interrupt
  jmp flood
.burst:
  sti
  mov ecx, 16
  mov dx, COM1
.byte:
  mov al, bl
  out dx, al
  inc bl
  loop .byte
%elifdef BLIND
  mov dx, COM1
  mov al, bl
  out dx, al
  inc bl
%else
  mov dx, COM1 + 5
.wait:
  in al, dx
  test al, 0x20
  jz .wait
  mov dx, COM1
  mov al, bl
  out dx, al
  inc bl
%endif
  jmp flood

%ifdef THRE_IRQ
isr:
  push rax
  mov al, 0x20                       ; EOI
  out PIC1_CMD, al
  pop rax
  iretq

%include "../board/idt64.inc"

idt_desc:
  dw 256 * 16 - 1
  dq idt
%endif

MULTIBOOT64_END
%ifdef THRE_IRQ
alignb 16
idt: resb 256 * 16
%endif
