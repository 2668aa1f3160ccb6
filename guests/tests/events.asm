; Guest for the event-injection and CPUID tests of the hypervisor API (test/nvmm/events.test.ts).
; 64-bit, loaded at 0x2000 in the standard libnvmm guest (page tables at 0x3000). The test
; builds the GDT and IDT in the data page at 0x1000 and points each IDT vector v at
; handlers + 16*v. A handler reports its vector and error code on port 0xE0 (two 32-bit OUTs),
; then returns with IRETQ (which also unblocks NMIs).
bits 64
org 0x2000
REPORT equ 0xe0
CPUID_PORT equ 0xe1

  jmp main_idle
  align 8
  dq handlers                   ; 0x2008: handler of vector 0; vector v at +16*v
  dq main_idle                  ; 0x2010: interrupts on, halt forever
  dq main_window                ; 0x2018: interrupts off for a while, then on
  dq main_cpuid                 ; 0x2020: CPUID leaf 1, ECX then EDX on port 0xE1

main_idle:
  sti
.halt:
  hlt
  jmp .halt

main_window:
  cli
  mov ecx, 200
.spin:
  dec ecx
  jnz .spin
  sti                           ; the window opens after the next instruction
  nop
.halt:
  hlt
  jmp .halt

main_cpuid:
  mov eax, 1
  xor ecx, ecx
  cpuid
  mov eax, ecx
  mov dx, CPUID_PORT
  out dx, eax
  mov eax, edx
  out dx, eax
  cli
  hlt

  align 16
handlers:
%assign v 0
%rep 33
  align 16
  %if v == 8 || v == 10 || v == 11 || v == 12 || v == 13 || v == 14 || v == 17
    push v                      ; the CPU pushed an error code
  %else
    push 0                      ; no error code: push a zero in its place
    push v
  %endif
  jmp report
%assign v v+1
%endrep

report:
  pop rax                       ; vector
  pop rbx                       ; error code
  mov dx, REPORT
  out dx, eax
  mov eax, ebx
  out dx, eax
  iretq
