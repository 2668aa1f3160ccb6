; h_io_assist: 12 cases of port I/O on port 123, 64-bit long mode.
%include "macros.inc"
bits 64
PORT equ 123

  dd 12
%assign i 1
%rep 12
  CASE_ENTRY i
%assign i i+1
%endrep

CASE_BEGIN 1            ; INB: imm8 and DX forms
  mov rbx, 0x1000
  in al, PORT
  mov [rbx], al
  inc rbx
  mov rdx, PORT
  in al, dx
  mov [rbx], al
  TEST_END
CASE_END 1

CASE_BEGIN 2            ; INW
  mov rbx, 0x1000
  in ax, PORT
  mov [rbx], ax
  add rbx, 2
  mov rdx, PORT
  in ax, dx
  mov [rbx], ax
  TEST_END
CASE_END 2

CASE_BEGIN 3            ; INL
  mov rbx, 0x1000
  in eax, PORT
  mov [rbx], eax
  add rbx, 4
  mov rdx, PORT
  in eax, dx
  mov [rbx], eax
  TEST_END
CASE_END 3

CASE_BEGIN 4            ; INSB+REP
  mov rdi, 0x1000
  mov rcx, 5
  mov rdx, PORT
  rep insb
  TEST_END
CASE_END 4

CASE_BEGIN 5            ; INSW+REP
  mov rdi, 0x1000
  mov rcx, 14
  mov rdx, PORT
  rep insw
  TEST_END
CASE_END 5

CASE_BEGIN 6            ; INSL+REP
  mov rdi, 0x1000
  mov rcx, 7
  mov rdx, PORT
  rep insd
  TEST_END
CASE_END 6

CASE_BEGIN 7            ; OUTB
  mov rbx, 0x1000
  mov al, [rbx]
  out PORT, al
  inc rbx
  mov al, [rbx]
  mov rdx, PORT
  out dx, al
  TEST_END
CASE_END 7

CASE_BEGIN 8            ; OUTW
  mov rbx, 0x1000
  mov ax, [rbx]
  out PORT, ax
  add rbx, 2
  mov ax, [rbx]
  mov rdx, PORT
  out dx, ax
  TEST_END
CASE_END 8

CASE_BEGIN 9            ; OUTL
  mov rbx, 0x1000
  mov eax, [rbx]
  out PORT, eax
  add rbx, 4
  mov eax, [rbx]
  mov rdx, PORT
  out dx, eax
  TEST_END
CASE_END 9

CASE_BEGIN 10           ; OUTSB+REP
  mov rsi, 0x1000
  mov rcx, 5
  mov rdx, PORT
  rep outsb
  TEST_END
CASE_END 10

CASE_BEGIN 11           ; OUTSW+REP
  mov rsi, 0x1000
  mov rcx, 8
  mov rdx, PORT
  rep outsw
  TEST_END
CASE_END 11

CASE_BEGIN 12           ; OUTSL+REP
  mov rsi, 0x1000
  mov rcx, 7
  mov rdx, PORT
  rep outsd
  TEST_END
CASE_END 12
