; The soft board's local APIC in x2APIC mode, as a guest sees it (multiboot64.inc's start, the
; APIC's page mapped too, to see that it stops responding). With the 8259 masked it checks
; CPUID.1:ECX.X2APIC, that the x2APIC MSRs #GP in xAPIC mode and that EXTD without EN is refused;
; enters x2APIC mode (IA32_APIC_BASE bits 11 and 10) and checks that the page is gone, the 32-bit
; ID and the LDR derived from it, that going back to xAPIC mode directly, the DFR (absent) and an
; EOI of a non-zero value #GP; takes the APIC timer's interrupts (periodic, vector 0x40, EOI
; through MSR 0x80B); sends itself vector 0x50 through SELF IPI (MSR 0x83F) and vector 0x51
; through the 64-bit ICR (MSR 0x830, the destination in EDX); then leaves x2APIC mode through
; disabled (after which the MSRs #GP) and finds the page again in xAPIC mode. Each step prints a
; line on COM1; a failed check prints "fail N" and ends through the debug-exit port with N
; (status 2N+1); success ends with 0x7A (status 0xF5). A #GP from RDMSR or WRMSR is counted and
; the instruction skipped.
bits 32
org 0x100000

APIC       equ 0xfee00000
%define MB64_MAP_UC APIC             ; the APIC's page, above the first GiB the include maps
%include "multiboot64.inc"

APIC_VERSION  equ 0x30               ; in the page (xAPIC mode)
APIC_TPR      equ 0x80
VERSION_VALUE equ 0x00050014         ; the board's APIC: version 0x14, max LVT 5
MSR_APIC_BASE equ 0x1b
BASE_EN       equ 1 << 11
BASE_EXTD     equ 1 << 10
X2_ID         equ 0x802
X2_TPR        equ 0x808
X2_EOI        equ 0x80b
X2_LDR        equ 0x80d
X2_DFR        equ 0x80e              ; not in x2APIC mode
X2_SVR        equ 0x80f
X2_ICR        equ 0x830
X2_LVTT       equ 0x832
X2_TICR       equ 0x838
X2_TDCR       equ 0x83e
X2_SELF_IPI   equ 0x83f
TIMER_VECTOR  equ 0x40
SELF_VECTOR   equ 0x50
ICR_VECTOR    equ 0x51
LVT_PERIODIC  equ 1 << 17
ICR_ASSERT    equ 1 << 14

; expects N more #GPs counted since R14D was set (see gp_mark); fails with R8D otherwise
%macro expect_gp 1
  mov eax, r14d
  add eax, %1
  cmp [gps], eax
  jne fail
%endmacro

main64:
  ; IDT: every vector to isr_ignore, #GP and the three vectors to their handlers
  mov rdi, idt
  mov ecx, 256
  mov rax, isr_ignore
.fill:
  call set_gate
  loop .fill
  mov rdi, idt + 13 * 16
  mov rax, isr_gp
  call set_gate
  mov rdi, idt + TIMER_VECTOR * 16
  mov rax, isr_timer
  call set_gate
  mov rdi, idt + SELF_VECTOR * 16
  mov rax, isr_self
  call set_gate
  mov rdi, idt + ICR_VECTOR * 16
  mov rax, isr_icr
  call set_gate
  lidt [idt_desc]
  mov al, 0xff                       ; the 8259 pair masked: only the APIC interrupts
  out 0x21, al
  out 0xa1, al

  ; CPUID.1: ECX bit 21 (x2APIC)
  mov eax, 1
  cpuid
  mov r8d, 1
  bt ecx, 21
  jnc fail
  mov rbx, APIC                      ; (not before CPUID, which writes EBX)
  ; xAPIC mode: the x2APIC MSRs #GP; EXTD without EN is refused
  mov r14d, [gps]
  mov ecx, X2_ID
  rdmsr
  mov ecx, X2_TPR
  xor eax, eax
  xor edx, edx
  wrmsr
  mov r8d, 2
  expect_gp 2
  mov ecx, MSR_APIC_BASE
  mov eax, APIC | BASE_EXTD | 0x100
  xor edx, edx
  wrmsr
  mov r8d, 3
  expect_gp 3
  mov rsi, msg_xapic
  call puts

  ; into x2APIC mode
  mov ecx, MSR_APIC_BASE
  rdmsr
  or eax, BASE_EN | BASE_EXTD
  wrmsr
  rdmsr
  mov r8d, 4
  bt eax, 10
  jnc fail
  ; the page does not respond: no version there, and a TPR write through it is lost
  mov r8d, 5
  mov eax, [rbx + APIC_VERSION]
  cmp eax, VERSION_VALUE
  je fail
  mov dword [rbx + APIC_TPR], 0x70
  mov ecx, X2_TPR
  rdmsr
  test eax, eax
  jnz fail
  mov rsi, msg_x2apic
  call puts

  ; the 32-bit x2APIC ID (0, the BSP's) and the LDR derived from it (cluster 0, member bit 0)
  mov r8d, 6
  mov ecx, X2_ID
  rdmsr
  or edx, eax
  jnz fail
  mov ecx, X2_LDR
  rdmsr
  cmp eax, 1
  jne fail
  test edx, edx
  jnz fail
  ; x2APIC -> xAPIC directly, the DFR, an EOI of 1: each #GPs
  mov r14d, [gps]
  mov ecx, MSR_APIC_BASE
  rdmsr
  and eax, ~BASE_EXTD
  wrmsr
  mov ecx, X2_DFR
  rdmsr
  mov ecx, X2_EOI
  mov eax, 1
  xor edx, edx
  wrmsr
  mov r8d, 7
  expect_gp 3
  mov ecx, MSR_APIC_BASE
  rdmsr
  bt eax, 10
  jnc fail
  mov rsi, msg_id
  call puts

  ; the timer, periodic, 1 ms (10^6 counts of the 1 GHz bus clock divided by 1): three interrupts
  mov ecx, X2_SVR
  mov eax, 0x1ff                     ; software enable, spurious vector 0xFF
  xor edx, edx
  wrmsr
  mov ecx, X2_TDCR
  mov eax, 0xb
  wrmsr
  mov ecx, X2_LVTT
  mov eax, LVT_PERIODIC | TIMER_VECTOR
  wrmsr
  mov ecx, X2_TICR
  mov eax, 1000000
  wrmsr
  mov r8d, 8
  mov r13, ticks
  mov r12d, 3
  call wait_for
  mov ecx, X2_TICR
  xor eax, eax
  xor edx, edx
  wrmsr                              ; stop it
  mov rsi, msg_timer
  call puts

  ; SELF IPI, then the ICR to x2APIC ID 0 (physical, fixed)
  mov ecx, X2_SELF_IPI
  mov eax, SELF_VECTOR
  xor edx, edx
  wrmsr
  mov r8d, 9
  mov r13, self_ipis
  mov r12d, 1
  call wait_for
  mov ecx, X2_ICR
  mov eax, ICR_ASSERT | ICR_VECTOR
  xor edx, edx                       ; destination: x2APIC ID 0
  wrmsr
  mov r8d, 10
  mov r13, icr_ipis
  mov r12d, 1
  call wait_for
  mov rsi, msg_ipi
  call puts

  ; out through disabled: the MSRs #GP again; then xAPIC mode and its page
  mov ecx, MSR_APIC_BASE
  rdmsr
  and eax, ~(BASE_EN | BASE_EXTD)
  wrmsr
  mov r14d, [gps]
  mov ecx, X2_TPR
  rdmsr
  mov r8d, 11
  expect_gp 1
  mov ecx, MSR_APIC_BASE
  rdmsr
  or eax, BASE_EN
  wrmsr
  mov r8d, 12
  cmp dword [rbx + APIC_VERSION], VERSION_VALUE
  jne fail
  mov rsi, msg_back
  call puts

  mov dx, DEBUG_EXIT
  mov al, 0x7a
  out dx, al
  jmp $

%include "wait64.inc"

fail:
  cli
  mov rsi, msg_fail
  call puts
  mov eax, r8d
  xor edx, edx
  mov ecx, 10
  div ecx
  test eax, eax
  jz .units
  add al, '0'
  call putc
.units:
  mov al, dl
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

; #GP: counted, and the RDMSR or WRMSR (2 bytes) that raised it skipped
isr_gp:
  inc dword [gps]
  add qword [rsp + 8], 2
  add rsp, 8                         ; the error code
  iretq

; EOI through MSR 0x80B
eoi:
  push rax
  push rcx
  push rdx
  mov ecx, X2_EOI
  xor eax, eax
  xor edx, edx
  wrmsr
  pop rdx
  pop rcx
  pop rax
  ret

isr_timer:
  inc dword [ticks]
  call eoi
  iretq

isr_self:
  inc dword [self_ipis]
  call eoi
  iretq

isr_icr:
  inc dword [icr_ipis]
  call eoi
  iretq

isr_ignore:
  iretq

msg_xapic db "x2apic msrs #gp in xapic mode", 10, 0
msg_x2apic db "x2apic mode, page gone", 10, 0
msg_id db "id 0 ldr 1", 10, 0
msg_timer db "timer 3", 10, 0
msg_ipi db "self ipi, icr ipi", 10, 0
msg_back db "disabled, then xapic", 10, 0
msg_fail db "fail ", 0

align 8
ticks dd 0
self_ipis dd 0
icr_ipis dd 0
gps dd 0
idt_desc:
  dw 256 * 16 - 1
  dq idt

MULTIBOOT64_END
alignb 16
idt: resb 256 * 16
