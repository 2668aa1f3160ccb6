; A multiboot guest that reads its input from COM1 (polling LSR.DR, FIFOs on). Once its UART is
; set up (resetting the FIFOs loses what came before, as on the chip) it prints "ready", then reads
; a 32-bit little-endian count N, then N bytes. It prints "got N sum S" (both in hex; S is the 32-bit sum
; of the bytes) and writes 1 to the debug-exit port. Input the host cannot deliver at once (more
; than its buffers hold) must wait, not be lost: the sum shows it.
bits 32
org 0x100000
%include "multiboot64.inc"

main64:
  mov dx, COM1 + 3
  mov al, 0x03                       ; 8N1
  out dx, al
  mov dx, COM1 + 2
  mov al, 0x07                       ; FIFOs on and cleared
  out dx, al
  mov rsi, ready_text
  call puts
  mov ecx, 4
  xor r8d, r8d                       ; N
.count:
  call getc
  shrd r8d, eax, 8                   ; bytes arrive low first
  loop .count
  mov ecx, r8d
  xor r9d, r9d                       ; the sum
  jrcxz .done
.byte:
  call getc
  add r9d, eax
  dec ecx
  jnz .byte
.done:
  mov rsi, got_text
  call puts
  mov eax, r8d
  call puthex32
  mov rsi, sum_text
  call puts
  mov eax, r9d
  call puthex32
  mov al, 10
  call putc
  mov al, 1
  mov dx, DEBUG_EXIT
  out dx, al
  jmp $

; EAX = the next received byte (zero-extended)
getc:
  push rdx
  mov dx, COM1 + 5
.wait:
  in al, dx
  test al, 1
  jz .wait
  mov dx, COM1
  xor eax, eax
  in al, dx
  pop rdx
  ret

; prints EAX as 8 hex digits
puthex32:
  push rcx
  mov ecx, 8
.digit:
  rol eax, 4
  push rax
  and al, 0x0f
  add al, '0'
  cmp al, '9'
  jbe .put
  add al, 'a' - '9' - 1
.put:
  call putc
  pop rax
  loop .digit
  pop rcx
  ret

%include "serial64.inc"

ready_text db "ready", 10, 0
got_text db "got ", 0
sum_text db " sum ", 0

MULTIBOOT64_END
