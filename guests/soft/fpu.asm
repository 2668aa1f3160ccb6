; FPU/SSE guest for the soft CPU (test/soft/fpu.test.ts). Real mode at 0:0x8000; the test sets CR0
; and CR4 and the IVT (vector 6 -> ud_handler, 7 -> nm_handler). OUT 0xE0, AL reports a code,
; OUT 0xE1 ends a step; the test inspects the state between steps.
bits 16
org 0x8000
start:
  ; step 1: SSE arithmetic, MXCSR rounding, FXSAVE/FXRSTOR round trip, x87 stack
  movaps xmm1, [val]          ; 1.5, -2.5, 2.5, 3.5 (floats)
  cvtps2dq xmm2, xmm1         ; nearest even: 2, -2, 2, 4
  ldmxcsr [mx_down]
  cvtps2dq xmm3, xmm1         ; down: 1, -3, 2, 3
  ldmxcsr [mx_default]
  fninit
  fld1
  fldpi
  fnstsw ax                   ; TOP = 6
  mov [sw], ax
  fxsave [area]
  fninit
  pxor xmm1, xmm1
  fxrstor [area]              ; brings back ST0 = pi, ST1 = 1, XMM1
  fstp tword [pi80]
  out 0xe1, al
  ; step 2 (the test sets CR0.TS): #NM
  movaps xmm0, xmm1
  out 0xe1, al
  ; step 3 (the test clears CR4.OSFXSR): #UD
  addps xmm0, xmm1
  out 0xe1, al
  hlt
ud_handler:
  mov al, 6
  out 0xe0, al
  hlt
nm_handler:
  mov al, 7
  out 0xe0, al
  hlt
align 16
val: dd 1.5, -2.5, 2.5, 3.5
mx_down: dd 0x3f80
mx_default: dd 0x1f80
sw: dw 0
align 16
pi80: times 10 db 0
align 16
area: times 512 db 0
