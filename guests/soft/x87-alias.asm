; The reserved x87 register encodings a CPU executes as aliases of architectural instructions
; (test/soft/x87-alias.test.ts): each case loads the same eight values (ST0 = +0, ST1 = 3, ST2 = -0,
; ST3 = a quiet NaN, ST4 = -1, ST5 = 0.5, ST6 = 7, ST7 = 2.5: FCOM of ST0 with ST1, ST2, ST3 gives
; less, equal, unordered; FXCH with ST2 swaps the signs), runs one instruction (or sequence) and stores the x87 state with FXSAVE at
; RESULT + 512 * k. Entered at 0x100000 in flat 32-bit protected mode; OUT 0xE1 ends.
bits 32
org 0x100000
%include "flat32.inc"

RESULT equ 0x200000

%macro CASE 1+
  call load
  %1
  fxsave [edi]
  add edi, 512
%endmacro

start:
  FLAT32_RELOAD gdtr
  mov edi, RESULT
  CASE db 0x90                  ; 0: the state after the loads
  ; pairs: the alias with ST(i), then the instruction it aliases, for i = 1, 2, 3
%assign i 1
%rep 3
  CASE db 0xd9, 0xd8 + i        ; FSTP1: FSTP ST(i)
  CASE db 0xdd, 0xd8 + i
  CASE db 0xdc, 0xd0 + i        ; FCOM2: FCOM ST(i)
  CASE db 0xd8, 0xd0 + i
  CASE db 0xdc, 0xd8 + i        ; FCOMP3: FCOMP ST(i)
  CASE db 0xd8, 0xd8 + i
  CASE db 0xdd, 0xc8 + i        ; FXCH4: FXCH ST(i)
  CASE db 0xd9, 0xc8 + i
  CASE db 0xde, 0xd0 + i        ; FCOMP5: FCOMP ST(i)
  CASE db 0xd8, 0xd8 + i
  CASE db 0xdf, 0xc8 + i        ; FXCH7: FXCH ST(i)
  CASE db 0xd9, 0xc8 + i
  CASE db 0xdf, 0xd0 + i        ; FSTP8: FSTP ST(i)
  CASE db 0xdd, 0xd8 + i
  CASE db 0xdf, 0xd8 + i        ; FSTP9: FSTP ST(i)
  CASE db 0xdd, 0xd8 + i
  CASE db 0xdf, 0xc0 + i        ; FFREEP ST(i): FFREE ST(i), then a pop (FFREE ST0, FINCSTP)
  CASE db 0xdd, 0xc0 + i, 0xdd, 0xc0, 0xd9, 0xf7
%assign i i + 1
%endrep
  CASE db 0xdb, 0xe0            ; FENI, FDISI, FSETPM (8087/287 only): FNOP since the 387
  CASE db 0xd9, 0xd0
  CASE db 0xdb, 0xe1
  CASE db 0xd9, 0xd0
  CASE db 0xdb, 0xe4
  CASE db 0xd9, 0xd0
  out 0xe1, al
  jmp $

load:
  fninit
  mov esi, values
  mov ecx, 8
.next:
  fld qword [esi]
  add esi, 8
  loop .next
  ret

align 8
values: dq 2.5, 7.0, 0.5, -1.0, __?QNaN?__, -0.0, 3.0, 0.0   ; loaded in this order: ST7 first, ST0 last

align 8
gdt:
  FLAT32_GDT_ENTRIES
gdt_end:
gdtr: dw gdt_end - gdt - 1
  dd gdt
