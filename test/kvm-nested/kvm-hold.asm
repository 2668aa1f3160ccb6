; kvm-hold: keeps three KVM objects alive for the life of the outer guest of the nested KVM run
; (test/kvm-nested/outer-guest.ts builds it with nasm and ld; outer-init.sh starts it).
;
; Why: the outer kernel rewrites its own code (text_poke_bp: an INT3 over the site, then the new
; bytes) whenever certain static keys change, and KVM changes some on every VM and vCPU created
; or destroyed while none other exists: `preempt_notifier_key` (the scheduler's
; finish_task_switch, run by every CPU), and in kvm.ko `kvm_has_noapic_vcpu` and `apic_sw_disabled`.
; QEMU 7.2's TCG with two vCPUs has been seen to keep executing a stale translation holding that
; INT3 after the kernel restored the bytes; the kernel then backs up over the vanished INT3 and
; both vCPUs loop there forever (the outer guest wedges with no message). With one VM holding an
; in-kernel APIC vCPU and one holding a vCPU without it, these keys stay on and tsvmm's VMs never
; flip them.
;
; Prints "kvm-hold: ready" once all three exist, then sleeps in pause(2) until killed.
; On a failed system call: prints which one and exits 1.

bits 64
default rel

%define SYS_write 1
%define SYS_open 2
%define SYS_ioctl 16
%define SYS_pause 34
%define SYS_exit 60
%define O_RDWR 2
%define O_CLOEXEC 0x80000
; <linux/kvm.h>: _IO(KVMIO = 0xae, nr)
%define KVM_CREATE_VM 0xae01
%define KVM_CREATE_VCPU 0xae41
%define KVM_CREATE_IRQCHIP 0xae60

section .rodata
dev_kvm: db "/dev/kvm", 0
ready: db "kvm-hold: ready", 10
ready_len equ $ - ready
failed: db "kvm-hold: a system call failed: "
failed_len equ $ - failed

section .text
global _start

; On a negative result (-errno): to fail, with the call's name (%1: its message, %2: its length).
%macro check 2
  test rax, rax
  jns %%ok
  lea r12, [%1]
  mov r13, %2
  jmp fail
%%ok:
%endmacro

; rax = ioctl(%1, %2, 0), or fail naming %3.
%macro kvm_ioctl 3
  mov eax, SYS_ioctl
  mov rdi, %1
  mov esi, %2
  xor edx, edx
  syscall
  check %3, %3_len
%endmacro

_start:
  mov eax, SYS_open
  lea rdi, [dev_kvm]
  mov esi, O_RDWR | O_CLOEXEC
  syscall
  check n_open, n_open_len
  mov r14, rax                  ; /dev/kvm

  ; VM 1: an in-kernel irqchip and a vCPU with its APIC
  kvm_ioctl r14, KVM_CREATE_VM, n_vm
  mov r15, rax
  kvm_ioctl r15, KVM_CREATE_IRQCHIP, n_irqchip
  kvm_ioctl r15, KVM_CREATE_VCPU, n_vcpu

  ; VM 2: a vCPU without an in-kernel APIC
  kvm_ioctl r14, KVM_CREATE_VM, n_vm
  mov r15, rax
  kvm_ioctl r15, KVM_CREATE_VCPU, n_vcpu

  mov eax, SYS_write
  mov edi, 1
  lea rsi, [ready]
  mov edx, ready_len
  syscall
.sleep:
  mov eax, SYS_pause
  syscall
  jmp .sleep

fail:
  mov eax, SYS_write
  mov edi, 2
  lea rsi, [failed]
  mov edx, failed_len
  syscall
  mov eax, SYS_write
  mov edi, 2
  mov rsi, r12
  mov rdx, r13
  syscall
  mov eax, SYS_exit
  mov edi, 1
  syscall

section .rodata
n_open: db "open /dev/kvm", 10
n_open_len equ $ - n_open
n_vm: db "KVM_CREATE_VM", 10
n_vm_len equ $ - n_vm
n_irqchip: db "KVM_CREATE_IRQCHIP", 10
n_irqchip_len equ $ - n_irqchip
n_vcpu: db "KVM_CREATE_VCPU", 10
n_vcpu_len equ $ - n_vcpu
