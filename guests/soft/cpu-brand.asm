; A flat real-mode guest for test/soft/cpu-option.test.ts: prints the CPU's brand string (CPUID
; 0x80000002-0x80000004, NULs left out) and a newline on COM1, then ends the machine through the
; debug-exit port with value 0x21.
bits 16
org 0x8000
  mov esi, 0x80000002
.leaf:
  mov eax, esi
  cpuid
  mov [buf], eax
  mov [buf + 4], ebx
  mov [buf + 8], ecx
  mov [buf + 12], edx
  mov dx, 0x3f8
  mov bx, buf
.byte:
  mov al, [bx]
  test al, al
  jz .skip
  out dx, al
.skip:
  inc bx
  cmp bx, buf + 16
  jne .byte
  inc esi
  cmp esi, 0x80000005
  jne .leaf
  mov al, 10
  out dx, al
  mov dx, 0x501
  mov al, 0x21
  out dx, al
  hlt
buf: times 16 db 0
