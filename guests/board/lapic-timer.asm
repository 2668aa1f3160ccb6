; The soft board's local APIC as a guest sees it (multiboot64.inc's start, the APIC's page mapped too).
; With the 8259 masked it checks CPUID.1 (APIC) and IA32_APIC_BASE, that CR8 and
; the TPR are one register, then takes the APIC timer's interrupts (vector 0x40, EOI through the
; page) in periodic, one-shot and TSC-deadline modes, and that a TPR of class 4 holds vector 0x40
; back until it is lowered. Each step prints a line on COM1; a failed check prints "fail N" and
; ends through the debug-exit port with N (status 2N+1); success ends with 0x7A (status 0xF5). The waits are HLT with
; interrupts on, so the board sleeps until the timer's deadline. (The board's APIC has
; TSC-deadline mode without advertising it in CPUID.1:ECX bit 24: see vmm/interrupts.ts.)
bits 32
org 0x100000

APIC       equ 0xfee00000
%define MB64_MAP_UC APIC             ; the APIC's page, above the first GiB the include maps
%include "multiboot64.inc"

APIC_TPR   equ 0x80
APIC_EOI   equ 0xb0
APIC_SVR   equ 0xf0
APIC_LVTT  equ 0x320
APIC_TICR  equ 0x380
APIC_TCCR  equ 0x390
APIC_TDCR  equ 0x3e0
VECTOR     equ 0x40
LVT_PERIODIC equ 1 << 17
LVT_DEADLINE equ 2 << 17
MSR_APIC_BASE equ 0x1b
MSR_TSC_DEADLINE equ 0x6e0

main64:
  ; IDT: every vector to isr_ignore, VECTOR to isr_timer
  mov rdi, idt
  mov ecx, 256
  mov rax, isr_ignore
.fill:
  call set_gate
  loop .fill
  mov rdi, idt + VECTOR * 16
  mov rax, isr_timer
  call set_gate
  lidt [idt_desc]
  mov al, 0xff                       ; the 8259 pair masked: only the APIC interrupts
  out 0x21, al
  out 0xa1, al

  ; CPUID.1: EDX bit 9 (APIC)
  mov eax, 1
  cpuid
  mov r8d, 1
  bt edx, 9
  jnc fail
  ; IA32_APIC_BASE: 0xFEE00000, enabled (bit 11), bootstrap processor (bit 8)
  mov ecx, MSR_APIC_BASE
  rdmsr
  mov r8d, 3
  cmp eax, APIC | 0x900
  jne fail
  mov rsi, msg_base
  call puts
  mov rbx, APIC                      ; (not before CPUID, which writes EBX)

  mov dword [rbx + APIC_SVR], 0x1ff  ; software enable, spurious vector 0xFF
  ; CR8 and the TPR are one register
  mov eax, 3
  mov cr8, rax
  mov r8d, 4
  cmp dword [rbx + APIC_TPR], 0x30
  jne fail
  mov dword [rbx + APIC_TPR], 0x50
  mov rax, cr8
  mov r8d, 5
  cmp eax, 5
  jne fail
  xor eax, eax
  mov cr8, rax
  mov rsi, msg_tpr
  call puts

  ; periodic: 1 ms (10^6 counts at the 1 GHz bus clock divided by 1), five interrupts
  mov dword [rbx + APIC_TDCR], 0xb   ; divide by 1
  mov dword [rbx + APIC_LVTT], LVT_PERIODIC | VECTOR
  mov dword [rbx + APIC_TICR], 1000000
  mov r8d, 6
  mov r12d, 5
  call wait_ticks
  mov dword [rbx + APIC_TICR], 0     ; stop it
  mov rsi, msg_periodic
  call puts

  ; one-shot: one interrupt, then the current count reads 0 and no more come
  mov dword [rbx + APIC_LVTT], VECTOR
  mov dword [rbx + APIC_TICR], 200000
  mov r8d, 7
  mov r12d, 1
  call wait_ticks
  mov r8d, 8
  cmp dword [rbx + APIC_TCCR], 0
  jne fail
  mov rsi, msg_oneshot
  call puts

  ; TSC-deadline: 1 ms of TSC from now; the MSR reads 0 once it fired
  mov dword [rbx + APIC_LVTT], LVT_DEADLINE | VECTOR
  rdtsc
  shl rdx, 32
  or rax, rdx
  add rax, 1000000
  mov rdx, rax
  shr rdx, 32
  mov ecx, MSR_TSC_DEADLINE
  wrmsr
  mov r8d, 9
  mov r12d, 1
  call wait_ticks
  mov ecx, MSR_TSC_DEADLINE
  rdmsr
  mov r8d, 10
  or eax, edx
  jnz fail
  mov rsi, msg_deadline
  call puts

  ; TPR class 4 holds vector 0x40 (class 4) back: a due deadline stays pending for 20 ms of TSC
  mov dword [rbx + APIC_TPR], 0x40
  mov r14d, [ticks]
  rdtsc                              ; a deadline already passed
  mov ecx, MSR_TSC_DEADLINE
  wrmsr
  sti
  rdtsc
  mov edi, eax
.held:
  rdtsc
  sub eax, edi
  cmp eax, 20000000
  jb .held
  cli
  mov r8d, 11
  cmp r14d, [ticks]
  jne fail
  mov r12d, 1
  mov dword [rbx + APIC_TPR], 0      ; lowered: the interrupt comes
  mov r8d, 12
  call wait_ticks
  mov rsi, msg_masked
  call puts

  mov dx, DEBUG_EXIT
  mov al, 0x7a
  out dx, al
  jmp $

; waits in HLT until R12D more timer interrupts were taken (wait64.inc); fails with R8D
wait_ticks:
  mov r13, ticks
  jmp wait_for

%include "wait64.inc"

fail:
  cli
  mov rsi, msg_fail
  call puts
  mov al, r8b
  add al, '0'
  call putc
  mov al, 10
  call putc
  mov dx, DEBUG_EXIT
  mov al, r8b
  out dx, al
  jmp $

%include "idt64.inc"

%include "serial64.inc"

isr_timer:
  inc dword [ticks]
  push rax
  mov rax, APIC
  mov dword [rax + APIC_EOI], 0
  pop rax
  iretq

isr_ignore:
  iretq

msg_base db "apic base ok", 10, 0
msg_tpr db "cr8 is the tpr", 10, 0
msg_periodic db "periodic 5", 10, 0
msg_oneshot db "one-shot 1", 10, 0
msg_deadline db "tsc-deadline 1", 10, 0
msg_masked db "tpr held it back", 10, 0
msg_fail db "fail ", 0

align 8
ticks dd 0
idt_desc:
  dw 256 * 16 - 1
  dq idt

MULTIBOOT64_END
alignb 16
idt: resb 256 * 16
