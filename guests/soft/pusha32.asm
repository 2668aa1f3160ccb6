; PUSHA/PUSHAD, POPA/POPAD and BOUND in a flat 32-bit guest (test/soft/pusha-bound.test.ts), as
; 32-bit kernels and real-mode code use them. Entered at 0x100000 in flat 32-bit protected mode,
; paging off, CPL 0. Results go to RES (read by the test); reports to port 0xE0: each exception is
; reported by its handler as the vector number, and the guest continues at [next].
;   1 set up;
;   PUSHAD: the eight slots at RES+0 (from ESP up), ESP after it at RES+32;
;   POPAD of a prepared frame (its ESP slot ignored): EAX..EDI at RES+36.., ESP at RES+68;
;   O16 PUSHA with the upper halves of the registers set: the eight word slots at RES+72, ESP at RES+88;
;   O16 POPA: the registers (upper halves kept) at RES+92.., ESP at RES+124;
;   2 BOUND within [lower, upper] (32-bit, signed; and the bounds themselves);
;   #BR (5): BOUND below the lower bound; #BR: above the upper bound; #BR: O16 BOUND with a signed word;
;   #UD (6): BOUND with a register operand (62 C1); 3 done.
bits 32
org 0x100000
%include "flat32.inc"

IDT equ 0x320000
RES equ 0x310000

start:
  FLAT32_RELOAD gdtr
%macro GATE 2 ; vector, handler
  mov edi, IDT + %1 * 8
  mov eax, %2
  mov [edi], ax
  mov word [edi + 2], 0x08
  mov word [edi + 4], 0x8e00
  shr eax, 16
  mov [edi + 6], ax
%endmacro
  GATE 5, br_handler
  GATE 6, ud_handler
  lidt [idtr]
  mov al, 1
  out 0xe0, al

  ; PUSHAD
  mov eax, 0x11111111
  mov ecx, 0x22222222
  mov edx, 0x33333333
  mov ebx, 0x44444444
  mov ebp, 0x66666666
  mov esi, 0x77777777
  mov edi, 0x88888888
  mov esp, 0x9000
  pushad
  mov [RES + 32], esp
  mov esi, esp
  mov edi, RES
  mov ecx, 8
  cld
  rep movsd

  ; POPAD of a frame: DI SI BP (SP ignored) BX DX CX AX from the lowest address up
  mov esp, frame
  popad
  mov [RES + 36], eax
  mov [RES + 40], ecx
  mov [RES + 44], edx
  mov [RES + 48], ebx
  mov [RES + 52], esp
  mov [RES + 56], ebp
  mov [RES + 60], esi
  mov [RES + 64], edi
  mov [RES + 68], esp

  ; O16 PUSHA: word slots, ESP - 16
  mov eax, 0xaaaa0001
  mov ecx, 0xaaaa0002
  mov edx, 0xaaaa0003
  mov ebx, 0xaaaa0004
  mov ebp, 0xaaaa0006
  mov esi, 0xaaaa0007
  mov edi, 0xaaaa0008
  mov esp, 0x9000
  o16 pusha
  mov [RES + 88], esp
  mov esi, esp
  mov edi, RES + 72
  mov ecx, 8
  rep movsw

  ; O16 POPA: the upper halves are kept
  mov eax, 0xbbbb0000
  mov ecx, eax
  mov edx, eax
  mov ebx, eax
  mov ebp, eax
  mov esi, eax
  mov edi, eax
  mov esp, frame16
  o16 popa
  mov [RES + 92], eax
  mov [RES + 96], ecx
  mov [RES + 100], edx
  mov [RES + 104], ebx
  mov [RES + 108], ebp
  mov [RES + 112], esi
  mov [RES + 116], edi
  mov [RES + 124], esp
  mov esp, 0xa000

  ; BOUND within the bounds (no exception)
  mov eax, -5
  bound eax, [bounds]
  mov eax, -10
  bound eax, [bounds]
  mov eax, 20
  bound eax, [bounds]
  mov al, 2
  out 0xe0, al

  mov dword [next], br1
  mov eax, -11
  bound eax, [bounds]
  out 0xe1, al                  ; no exception: end the run early (the test fails)
br1:
  mov dword [next], br2
  mov eax, 21
  bound eax, [bounds]
  out 0xe1, al
br2:
  mov dword [next], ud1
  mov ax, 0x8000                ; -32768 < -100 (signed words)
  o16 bound ax, [bounds16]
  out 0xe1, al
ud1:
  mov dword [next], done
  db 0x62, 0xc1                 ; bound %eax, %ecx: #UD
  out 0xe1, al
done:
  mov al, 3
  out 0xe0, al
  out 0xe1, al
  jmp $

; exception handlers: report the vector, drop the frame, continue at [next]
br_handler:
  mov al, 5
  jmp report
ud_handler:
  mov al, 6
report:
  out 0xe0, al
  add esp, 12
  jmp [next]

align 4
next: dd 0
bounds: dd -10, 20
bounds16: dw -100, 100
frame: dd 0xd1, 0x51, 0xb1, 0xdeadbeef, 0xb2, 0xd2, 0xc1, 0xa1
frame16: dw 0xd1, 0x51, 0xb1, 0xbeef, 0xb2, 0xd2, 0xc1, 0xa1

align 8
gdt:
  FLAT32_GDT_ENTRIES
gdt_end:
gdtr: dw gdt_end - gdt - 1
  dd gdt
idtr: dw 256 * 8 - 1
  dd IDT
