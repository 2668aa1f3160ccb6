; h_mem_assist, 16-bit part: 7 real-mode cases against an MMIO page at guest-physical 0x1000.
%include "macros.inc"
bits 16

  dd 7
%assign i 1
%rep 7
  CASE_ENTRY i
%assign i i+1
%endrep

CASE_BEGIN 1            ; MOV single register address
  mov bx, 0x10f1
  mov dx, 0x123
  mov [bx], dl
  TEST16_END
CASE_END 1

CASE_BEGIN 2            ; MOV dual: BX+DI
  mov bx, 0x10f1
  mov di, 2
  mov dx, 0x123
  mov [bx + di], dx
  TEST16_END
CASE_END 2

CASE_BEGIN 3            ; MOV dual + disp8: BP+SI-2
  mov bp, 0x10f1
  mov si, 2
  mov dx, 0x678
  mov [bp + si - 2], dx
  TEST16_END
CASE_END 3

CASE_BEGIN 4            ; Mixed operand and address sizes
  mov bp, 0x10f0
  mov si, 2
  mov di, 2 + 4 + 4
  mov dx, 0xffff
  mov eax, 1
  mov ebx, 0x10
  mov ecx, 0x1000
  mov [bp + si + 4], dx         ; 16-bit operand, 16-bit address
  and [bp + si + 4], eax        ; 32-bit operand, 16-bit address
  or [ebp + esi + 4], bx        ; 16-bit operand, 32-bit address (SIB)
  or [bp + di - 4], ecx         ; 32-bit operand, 16-bit address, negative disp
  TEST16_END
CASE_END 4

CASE_BEGIN 5            ; disp16 only (mod=00 rm=110)
  mov byte [0x1234], 0x12
  TEST16_END
CASE_END 5

CASE_BEGIN 6            ; XCHG
  mov bp, 0x1234
  mov di, 4
  mov bx, 0x1200
  mov cx, 0x34
  xchg [bp], bx
  xchg cl, [bp + di - 4]
  TEST16_END
CASE_END 6

CASE_BEGIN 7            ; BT with default and overridden operand sizes
  mov bx, 0x1240
  mov word [bx], 0x8001
  mov dword [bx + 4], 0x80000001
  bt word [bx], 0
  jnc .fail
  bt word [bx], 1
  jc .fail
  bt word [bx], 255
  jnc .fail
  bt dword [bx + 4], 0
  jnc .fail
  bt dword [bx + 4], 1
  jc .fail
  bt dword [bx + 4], 255
  jnc .fail
  mov cx, [bx]
  cmp cx, 0x8001
  jne .fail
  mov ecx, [bx + 4]
  cmp ecx, 0x80000001
  jne .fail
  mov word [0x1234], 1
  TEST16_END
.fail:
  mov word [0x1234], 0
  TEST16_END
CASE_END 7
