; A guest that programs the board's devices with nonsense, interrupts off (tsvmm run --flat
; 0x100000:protected32): every i8042 controller command with a junk data byte and every keyboard
; command; junk in the ACPI PM1 status, enable and control registers (never SLP_EN) and the reset
; register (never RST_CPU rising); junk initialization and operation words for both 8259s and
; their ELCRs; every 8254 control word (every counter, mode, access and read-back) with junk
; counts, among them 1 in the rate generator (an IRQ 0 storm, held back by IF = 0), and port 0x61;
; every CMOS register with junk, the clock stopped and restarted on a junk date; every UART
; register with junk. Then it ends the way END says:
;   0  puts COM1 back in order, prints "devices survived", ends through the debug-exit port with
;      0x2a (exit status 0x55)
;   1  the i8042 reset pulse (command 0xFE)                       -> reset
;   2  the i8042 output port written with the reset line low      -> reset
;   3  the reset register, as Linux does it: 0x02 then 0x06       -> reset
;   4  ACPI sleep: SLP_EN with SLP_TYP 5 (the DSDT's \_S5)         -> power-off
;   5  ACPI sleep: SLP_EN with SLP_TYP 3, which the board has not -> an error that says so
bits 32
org 0x100000
  jmp start
%include "flat.inc"

I8042_DATA equ 0x60
I8042_CMD  equ 0x64
PM1_STS    equ 0x600
PM1_EN     equ 0x602
PM1_CNT    equ 0x604
PM_TMR     equ 0x608
SLP_EN     equ 0x2000
RESET_REG  equ 0xcf9
RST_CPU    equ 0x04

; EAX = a junk byte pattern from ECX (the loop counter).
%macro JUNK 0
  mov eax, ecx
  imul eax, eax, 0x9e3779b1
  xor eax, 0x5a5a5a5a
%endmacro

; Reads the i8042 output buffer empty (at most 32 bytes: it holds 16).
%macro I8042_DRAIN 0
  push ecx
  mov ecx, 32
%%more:
  in al, I8042_CMD
  in al, I8042_DATA
  loop %%more
  pop ecx
%endmacro

start:
  cli

; ---- i8042: every controller command, each followed by a junk data byte (reset line high) ----
  xor ecx, ecx
.kbc:
  mov al, cl
  cmp al, 0xf0
  jb .kbc_send
  test al, 1                         ; 0xF0-0xFE with bit 0 clear pulse the reset line
  jz .kbc_next
.kbc_send:
  out I8042_CMD, al
  JUNK
  or al, 1                           ; output port bit 0 (reset, active low) stays high
  out I8042_DATA, al
  I8042_DRAIN
.kbc_next:
  inc ecx
  cmp ecx, 0x100
  jb .kbc
  ; every keyboard command byte (no controller command pending), with a junk parameter
  xor ecx, ecx
.kbd:
  mov al, cl
  out I8042_DATA, al
  JUNK
  out I8042_DATA, al
  I8042_DRAIN
  inc ecx
  cmp ecx, 0x100
  jb .kbd

; ---- ACPI PM1 registers and the reset register ----
  xor ecx, ecx
.pm:
  JUNK
  mov dx, PM1_STS
  out dx, ax
  mov dx, PM1_EN
  out dx, ax
  mov dx, PM1_STS                    ; status and enable at once
  out dx, eax
  and ax, ~SLP_EN
  mov dx, PM1_CNT
  out dx, ax
  out dx, al
  mov dx, PM_TMR                     ; read-only
  out dx, eax
  in eax, dx
  mov dx, PM1_CNT
  in ax, dx
  JUNK
  and al, ~RST_CPU
  mov dx, RESET_REG
  out dx, al
  in al, dx
  inc ecx
  cmp ecx, 0x400
  jb .pm

; ---- 8259s: junk initialization sequences and operation words, then ELCR ----
  xor ecx, ecx
.pic:
  JUNK
  or al, 0x10                        ; ICW1 (with junk LTIM, SNGL, IC4)
  out 0x20, al
  out 0xa0, al
  shr eax, 8
  out 0x21, al                       ; ICW2 (a junk vector base), then ICW3 / ICW4 or IMR
  out 0xa1, al
  shr eax, 8
  out 0x21, al
  out 0xa1, al
  shr eax, 8
  out 0x21, al
  out 0xa1, al
  JUNK
  and al, ~0x10                      ; OCW2 or OCW3 (EOIs, rotations, poll, special mask)
  out 0x20, al
  out 0xa0, al
  in al, 0x20
  in al, 0x21
  in al, 0xa0
  in al, 0xa1
  JUNK
  mov dx, 0x4d0
  out dx, ax
  in ax, dx
  inc ecx
  cmp ecx, 0x400
  jb .pic

; ---- 8254: every control word, junk counts (and 1, and 0) ----
  xor ecx, ecx
.pit:
  mov al, cl
  out 0x43, al
  JUNK
  out 0x40, al
  out 0x41, al
  out 0x42, al
  mov al, 1
  out 0x40, al
  out 0x41, al
  out 0x42, al
  xor al, al
  out 0x40, al
  out 0x41, al
  out 0x42, al
  in al, 0x40
  in al, 0x41
  in al, 0x42
  in al, 0x40
  JUNK
  out 0x61, al
  in al, 0x61
  inc ecx
  cmp ecx, 0x100
  jb .pit
  mov al, 0x34                       ; counter 0, LSB then MSB, rate generator...
  out 0x43, al
  mov al, 1                          ; ...with a count of 1 (the datasheet calls it illegal)
  out 0x40, al
  xor al, al
  out 0x40, al

; ---- CMOS: every register with junk; the clock stopped and restarted on a junk date ----
  xor ecx, ecx
.cmos:
  mov al, cl                         ; bit 7: NMI disable, junk too
  out 0x70, al
  JUNK
  out 0x71, al
  in al, 0x71
  inc ecx
  cmp ecx, 0x100
  jb .cmos
  mov al, 0x0b                       ; register B: SET, binary, 12-hour
  out 0x70, al
  mov al, 0x84
  out 0x71, al
  xor ecx, ecx
.date:
  mov al, cl
  out 0x70, al
  mov al, 0xff
  out 0x71, al
  inc ecx
  cmp ecx, 0x0a
  jb .date
  mov al, 0x32                       ; the century byte
  out 0x70, al
  mov al, 0xff
  out 0x71, al
  mov al, 0x0b                       ; SET off, BCD: the clock restarts from 0xff everywhere
  out 0x70, al
  mov al, 0x00
  out 0x71, al
  xor ecx, ecx
.time:
  mov al, cl
  out 0x70, al
  in al, 0x71
  inc ecx
  cmp ecx, 0x0e
  jb .time

; ---- UART: every register with junk ----
  xor ecx, ecx
.uart:
  JUNK
  mov dx, COM1
  mov ebx, 8
.reg:
  out dx, al
  in al, dx
  ror eax, 5
  inc dx
  dec ebx
  jnz .reg
  inc ecx
  cmp ecx, 0x400
  jb .uart

; ---- the end ----
%if END == 0
  call com1_init
  mov esi, survived
  call puts
  DEBUG_EXIT_WITH 0x2a
survived: db "devices survived", 10, 0
%elif END == 1
  mov al, 0xfe
  out I8042_CMD, al
%elif END == 2
  mov al, 0xd1                       ; write the output port...
  out I8042_CMD, al
  mov al, 0xfe                       ; ...with bit 0, the reset line, low
  out I8042_DATA, al
%elif END == 3
  mov dx, RESET_REG
  mov al, 0x02
  out dx, al
  mov al, 0x06
  out dx, al
%elif END == 4
  mov dx, PM1_CNT
  mov ax, SLP_EN | (5 << 10)
  out dx, ax
%elif END == 5
  mov dx, PM1_CNT
  mov ax, SLP_EN | (3 << 10)
  out dx, ax
%endif
  jmp $                              ; (the machine has ended)
