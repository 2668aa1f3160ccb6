; x87 #MF and packed BCD on the soft CPU (test/soft/x87-mf.test.ts). Entered at 0x100000 in flat
; 32-bit protected mode, paging off, CPL 0. Reports go to port 0xE0, OUT 0xE1 ends:
;   1 a divide by zero with ZE unmasked is pending (FNSTSW, a non-waiting instruction, saw it);
;   16 the #MF handler, entered at the FWAIT (it stores the faulting EIP and FSW, FNCLEX, IRETD);
;   2 after the FWAIT re-executed; 16 again, at the next waiting x87 instruction (FLD1); 3 after it;
;   4 the same with ZE masked: no #MF; 5 FNSTCW, FNSTSW, FNCLEX with an exception pending: no #MF;
;   6 FNINIT with an exception pending: no #MF; 0x77 #NM at FWAIT with CR0.MP and TS; 8 after it;
;   9 FBLD/FBSTP done. RESULT (dwords unless said): +0 FSW after the pending divide, +8/+12 the EIPs
;   of the two #MF, +16/+20 FSW in the handler, +48 FISTP qword of FBLD -123456789012345678,
;   +56 FBSTP of FILD 987654321098765432, +72 FBSTP 2.5, +88 FBSTP -7.5, +104 FBSTP 1e18 (invalid:
;   the BCD indefinite), +120 FSW after it; +200/+204 the addresses of the FWAIT and the FLD1.
bits 32
org 0x100000
%include "flat32.inc"

RESULT equ 0x310000
IDT    equ 0x320000

%macro REPORT 1
  mov al, %1
  out 0xe0, al
%endmacro

%macro SET_GATE 2 ; vector, handler
  mov eax, %2
  mov [IDT + %1 * 8], ax
  mov word [IDT + %1 * 8 + 2], 0x08
  mov word [IDT + %1 * 8 + 4], 0x8e00
  shr eax, 16
  mov [IDT + %1 * 8 + 6], ax
%endmacro

start:
  FLAT32_RELOAD gdtr
  SET_GATE 16, mf_handler
  SET_GATE 7, nm_handler
  lidt [idtr]
  mov eax, cr0
  and eax, ~0xc                 ; EM TS
  or eax, 0x22                  ; NE MP
  mov cr0, eax
  mov dword [RESULT + 200], at_fwait
  mov dword [RESULT + 204], at_fld

  ; ZE unmasked: 1/0 sets ZE and ES, and #MF waits for the next waiting instruction
  fninit
  fldcw [cw_zm]
  fld1
  fldz
  fdivp st1, st0
  fnstsw ax
  mov [RESULT], ax
  REPORT 1
at_fwait:
  fwait
  REPORT 2
  fninit
  fldcw [cw_zm]
  fld1
  fldz
  fdivp st1, st0
at_fld:
  fld1
  REPORT 3

  ; masked (FNINIT's FCW): no #MF
  fninit
  fld1
  fldz
  fdivp st1, st0
  fwait
  fld1
  REPORT 4

  ; the non-waiting control instructions do not raise it
  fninit
  fldcw [cw_zm]
  fld1
  fldz
  fdivp st1, st0
  fnstcw [RESULT + 40]
  fnstsw ax
  fnclex
  fwait
  REPORT 5
  fldcw [cw_zm]
  fld1
  fldz
  fdivp st1, st0
  fninit
  fwait
  REPORT 6

  ; FWAIT with CR0.MP = TS = 1: #NM
  mov eax, cr0
  or eax, 8
  mov cr0, eax
  fwait
  REPORT 8

  ; packed BCD
  fninit
  fbld [bcd_a]
  fistp qword [RESULT + 48]
  fild qword [int_b]
  fbstp [RESULT + 56]
  fld qword [d25]
  fbstp [RESULT + 72]
  fld qword [dm75]
  fbstp [RESULT + 88]
  fld qword [d1e18]
  fbstp [RESULT + 104]
  fnstsw ax
  mov [RESULT + 120], ax
  REPORT 9
  out 0xe1, al
  jmp $

mf_handler:
  REPORT 16
  mov eax, [esp]
  mov ecx, [mf_count]
  mov [RESULT + 8 + ecx * 4], eax
  fnstsw ax
  mov [RESULT + 16 + ecx * 4], ax
  inc dword [mf_count]
  fnclex
  iretd

nm_handler:
  REPORT 0x77
  clts
  iretd

align 8
mf_count: dd 0
cw_zm:    dw 0x37b              ; all masked but ZE
bcd_a:    db 0x78, 0x56, 0x34, 0x12, 0x90, 0x78, 0x56, 0x34, 0x12, 0x80
int_b:    dq 987654321098765432
d25:      dq 2.5
dm75:     dq -7.5
d1e18:    dq 1.0e18

align 8
gdt:
  dq 0
  dq 0x00cf9a000000ffff         ; 0x08 code32
  dq 0x00cf92000000ffff         ; 0x10 data
gdt_end:
gdtr: dw gdt_end - gdt - 1
  dd gdt
idtr: dw 256 * 8 - 1
  dd IDT
