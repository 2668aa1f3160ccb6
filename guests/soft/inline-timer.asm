; A one-shot timer programmed by a port write must fire although no timer was due before it:
; the soft CPU serving devices inline has to look at the timers again after the write. 64-bit,
; at 0x2000 in the standard libnvmm guest; the test puts the IDT at 0x1000 and the GDT at 0x1800,
; vector 0x20 at `handler`. Three rounds of: arm (OUT 0x40), wait with IF set (at most 200 ms of
; TSC, which counts nanoseconds); then report the count of interrupts taken (OUT 0xE0) and halt.
bits 64
org 0x2000
  jmp start
  align 8
  dq handler                    ; 0x2008: where the test points vector 0x20
start:
  xor ebx, ebx                  ; interrupts taken
  mov ecx, 3
.round:
  mov esi, ebx
  mov al, 1
  out 0x40, al                  ; arm the one-shot
  rdtsc
  mov edi, eax                  ; start of the wait
  sti
.wait:
  cmp ebx, esi                  ; spin until the handler counted one more...
  jne .taken
  rdtsc
  sub eax, edi
  cmp eax, 200000000            ; ...or 200 ms went by
  jb .wait
.taken:
  cli
  loop .round
  mov eax, ebx
  out 0xe0, eax
  hlt
handler:
  inc ebx                       ; (RDTSC clobbers EDX and EAX only)
  mov al, 0x20
  out 0x20, al                  ; end of interrupt
  iretq
