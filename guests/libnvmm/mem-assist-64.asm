; h_mem_assist, 64-bit part: 19 cases against an MMIO page at guest-physical 0x1000.
; Case 17 is DragonFly's "REP" (REP on a non-string instruction is ignored).
%include "macros.inc"
bits 64

  dd 19
%assign i 1
%rep 19
  CASE_ENTRY i
%assign i i+1
%endrep

CASE_BEGIN 1            ; MOV: imm32, SIB with REX.X, disp8 on RBP, imm8 store
  mov rax, 0x1000
  mov rbp, 0x1000
  mov qword [rax], 0x1000
  mov r11, 1
  mov qword [rax + r11*8], 0x2000
  mov r8, [rbp]
  mov rbx, [rbp + 8]
  add r8, rbx
  mov [rbp], r8
  mov byte [rbp], 4
  TEST_END
CASE_END 1

CASE_BEGIN 2            ; OR: reg->mem at 8 and 16 bits, mem->reg at 64
  mov rax, 0x1000
  mov qword [rax], 0x1000
  mov rbx, 0xff
  or [rax], bl
  mov rcx, 0x400
  or [rax], cx
  mov rcx, 0x200
  or rcx, [rax]
  mov [rax], rcx
  TEST_END
CASE_END 2

CASE_BEGIN 3            ; AND
  mov rax, 0x1000
  mov qword [rax], 0x1fff
  mov rbx, 0x1ff0
  and [rax], rbx
  mov rcx, 0x10c1
  and [rax], cl
  TEST_END
CASE_END 3

CASE_BEGIN 4            ; XOR
  mov rax, 0x1000
  mov qword [rax], 0x1fff
  mov rbx, 0x1ff0
  xor [rax], rbx
  mov rcx, 0x10c0
  xor [rax], cx
  TEST_END
CASE_END 4

CASE_BEGIN 5            ; Address sizes: 0x67 truncates RAX to EAX (EBX is 0)
  mov rax, 0xffffffff00001000
  mov qword [eax], 0x1fff
  mov byte [eax + ebx], 0
  TEST_END
CASE_END 5

CASE_BEGIN 6            ; DMO: moffs64 forms A3, A0, A2
  mov rax, 0xffa0
  mov [qword 0x1000], rax
  mov al, [qword 0x1000]
  or al, 0x0b
  mov [qword 0x1000], al
  TEST_END
CASE_END 6

CASE_BEGIN 7            ; STOS
  mov rax, 0x56
  mov rcx, 1
  mov rdi, 0x1000
  rep stosb
  mov rax, 0x1234
  stosw
  TEST_END
CASE_END 7

CASE_BEGIN 8            ; LODS
  mov rsi, 0x1008
  mov qword [rsi], 0x12345678
  mov rdi, 0x1000
  lodsw
  mov [rdi], ax
  add rdi, 2
  lodsb
  mov [rdi], al
  add rdi, 1
  lodsb
  mov [rdi], al
  add rdi, 2
  TEST_END
CASE_END 8

CASE_BEGIN 9            ; MOVS: both operands MMIO
  mov rax, 0x1000
  mov qword [rax + 8], 0x12345678
  mov rsi, 0x1008
  mov rdi, 0x1000
  mov rcx, 4
  rep movsb
  mov rcx, 2
  rep movsw
  TEST_END
CASE_END 9

CASE_BEGIN 10           ; MOVZXB: a 32-bit destination clears bits 63:32
  mov rax, 0x1000
  mov qword [rax], 0x12345678
  mov rbx, -1
  movzx ebx, byte [rax]
  mov [rax], rbx
  TEST_END
CASE_END 10

CASE_BEGIN 11           ; MOVZXW
  mov rax, 0x1000
  mov qword [rax], 0x12345678
  mov rbx, -1
  movzx rbx, word [rax]
  mov [rax], rbx
  TEST_END
CASE_END 11

CASE_BEGIN 12           ; CMP: flags of mem - imm at every size (0xFFFFFFFFF2345678 = -0x0DCBA988)
  mov rax, 0x1000
  mov qword [rax], -0x0dcba988
  cmp byte [rax], 0x78
  jne .fail
  cmp byte [rax], 0x77
  jl .fail
  cmp byte [rax], 0x79
  jg .fail
  cmp word [rax], 0x5678
  jne .fail
  cmp word [rax], 0x5677
  jl .fail
  cmp word [rax], 0x5679
  jg .fail
  cmp dword [rax], 0xf2345678
  jne .fail
  cmp dword [rax], 0xf2345677
  jl .fail
  cmp dword [rax], 0xf2345679
  jg .fail
  cmp qword [rax], -0x0dcba988
  jne .fail
  cmp qword [rax], -0x0dcba989
  jl .fail
  cmp qword [rax], -0x0dcba987
  jg .fail
  mov qword [rax], 1
  TEST_END
.fail:
  mov qword [rax], 0
  TEST_END
CASE_END 12

CASE_BEGIN 13           ; SUB: mem -= reg, then reg -= mem
  mov rax, 0x1000
  mov qword [rax], 0x1000a0ff
  mov rcx, 0xffff
  sub [rax], cl
  mov rcx, 0xa000
  sub [rax], cx
  mov rcx, 0xf1000a0ff
  sub rcx, [rax]
  mov [rax], rcx
  TEST_END
CASE_END 13

CASE_BEGIN 14           ; TEST
  mov rax, 0x1000
  mov qword [rax], 0xa0ff
  test byte [rax], 0x0f
  jz .fail
  test word [rax], 0x0f00
  jnz .fail
  test dword [rax], 0xa000
  jz .fail
  mov qword [rax], 1
  TEST_END
.fail:
  mov qword [rax], 0
  TEST_END
CASE_END 14

CASE_BEGIN 15           ; XCHG: memory and register both updated
  mov rax, 0x1000
  mov rbx, 0x120000
  mov rcx, 0x3400
  mov rdx, 0x56
  xchg [rax], rbx
  xchg cx, [rax]
  xchg [rax], dl
  TEST_END
CASE_END 15

CASE_BEGIN 16           ; XCHG with a 32-bit address
  mov rax, 0x1000
  mov rbx, 0
  mov rcx, 0
  mov rdx, 0
  mov qword [rax], 0x123456
  xchg [eax], rbx
  mov qword [rax], 0
  xchg [eax], rbx
  TEST_END
CASE_END 16

CASE_BEGIN 17           ; REP: F3 on MOV is not a repeat; one write, RCX unchanged
  mov rax, 0x1000
  mov rcx, 4
  db 0xf3
  mov [rax], rcx
  TEST_END
CASE_END 17

CASE_BEGIN 18           ; Sign extension of imm8 to the operand size
  mov rax, 0x1000
  mov qword [rax], -1
  cmp byte [rax], -1
  jne .fail
  cmp word [rax], -1
  jne .fail
  cmp dword [rax], -1
  jne .fail
  mov qword [rax], 1
  TEST_END
.fail:
  mov qword [rax], 0
  TEST_END
CASE_END 18

CASE_BEGIN 19           ; BT: offset modulo operand width, CF only, memory untouched
  mov rax, 0x1000
  mov word [rax + 8], 0x8001
  mov dword [rax + 16], 0x80000001
  mov rbx, 0x8000000000000001
  mov [rax + 24], rbx
  bt word [rax + 8], 0
  jnc .fail
  bt word [rax + 8], 1
  jc .fail
  bt word [rax + 8], 255
  jnc .fail
  bt dword [rax + 16], 0
  jnc .fail
  bt dword [rax + 16], 1
  jc .fail
  bt dword [rax + 16], 255
  jnc .fail
  bt qword [rax + 24], 0
  jnc .fail
  bt qword [rax + 24], 1
  jc .fail
  bt qword [rax + 24], 255
  jnc .fail
  movzx rcx, word [rax + 8]
  cmp rcx, 0x8001
  jne .fail
  mov ecx, [rax + 16]
  cmp ecx, 0x80000001
  jne .fail
  mov rcx, [rax + 24]
  cmp rcx, rbx
  jne .fail
  mov qword [rax], 1
  TEST_END
.fail:
  mov qword [rax], 0
  TEST_END
CASE_END 19
