; A guest that writes junk to every port, 0 to 0xFFFF, with each access size (byte, word, dword),
; and reads each with each size (tsvmm run --flat 0x100000:protected32). What a port does with a
; write is its business; the machine must survive all of it. Left out are the writes that end
; the machine by design, any access covering: the debug-exit port (0x501), the i8042 command port
; (0x64: 0xF0-0xFE pulse the reset line), the reset control register (0xCF9) and the high byte
; of PM1 control (0x605, SLP_EN). After the sweep the guest puts COM1 back in order, says so and
; ends through the debug-exit port with 0x2a (exit status 0x55).
bits 32
org 0x100000
  jmp start
%include "flat.inc"

start:
  cli
  xor ebx, ebx                       ; EBX: the port
.port:
  mov eax, ebx
  imul eax, eax, 0x9e3779b1          ; junk that differs from port to port
  mov ecx, 1
  call ends_machine
  jc .word
  mov dx, bx
  out dx, al
.word:
  mov ecx, 2
  call ends_machine
  jc .dword
  mov dx, bx
  out dx, ax
.dword:
  mov ecx, 4
  call ends_machine
  jc .reads
  mov dx, bx
  out dx, eax
.reads:
  mov dx, bx
  in al, dx
  in ax, dx
  in eax, dx
  inc ebx
  cmp ebx, 0x10000
  jb .port
  call com1_init
  mov esi, done
  call puts
  DEBUG_EXIT_WITH 0x2a

; CF set when the ECX ports from EBX cover one of the machine-ending ports. Keeps EAX.
ends_machine:
  push esi
  mov esi, ending
.next:
  movzx edx, word [esi]
  test edx, edx
  jz .no
  add esi, 2
  cmp edx, ebx
  jb .next
  sub edx, ebx
  cmp edx, ecx
  jae .next
  pop esi
  stc
  ret
.no:
  pop esi
  clc
  ret

ending: dw 0x64, 0x501, 0x605, 0xcf9, 0
done: db "every port written and read", 10, 0
