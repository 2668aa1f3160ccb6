; The guest the gdb tests debug with two processors (`--smp 2`), each a thread to gdb: a multiboot
; kernel in an ELF64 file with its symbols, linked by guests/gdb/target.ld as target.asm is.
;
; The boot processor goes to long mode (4 GiB identity-mapped: the local APIC is at 0xfee00000),
; puts 0x100 + its local APIC id in R12, starts the application processor (APIC id 1: the board
; gives vCPU n APIC id n) with INIT-SIPI-SIPI into a real-mode trampoline copied to 0x8000, and
; waits in `bsp_wait` until that one says it ran. The application processor climbs to long mode,
; puts 0x100 + its APIC id in R12, runs `ap_work` (code only it runs: a breakpoint there stops
; thread 2), counts itself in `ap_done` and halts. The boot processor then prints "smp done" and
; ends the machine through the debug-exit port with `status` (exit code 2 * status + 1).
; With `hold` set (a debugger writes it before the guest runs), both processors spin instead, each
; in its own loop (`ap_hold` after counting itself, `bsp_hold` after seeing it), until `hold` is
; cleared: then the application processor halts and the boot processor ends the machine as above.
MB_MAGIC   equ 0x1badb002
MB_FLAGS   equ 0x00000002            ; memory info (an ELF: the loader reads the program headers)
LAPIC      equ 0xfee00000
LAPIC_ID   equ 0x20                  ; register offsets, used as [r15 + ...]
LAPIC_SVR  equ 0xf0
LAPIC_ICRL equ 0x300
LAPIC_ICRH equ 0x310
AP_APIC_ID equ 1
TRAMPOLINE equ 0x8000
DEBUG_EXIT equ 0x501

section .multiboot progbits alloc noexec nowrite align=4
  dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

section .text
bits 32
global _start:function
_start:
  mov esp, stack_top
  mov edi, pml4                      ; zero the six tables
  mov ecx, 6 * 4096 / 4
  xor eax, eax
  rep stosd
  mov dword [pml4], pdpt + 3
  mov edi, pdpt                      ; four page directories: 4 GiB
  mov eax, pd + 3
  mov ecx, 4
.pdpt:
  mov [edi], eax
  add eax, 4096
  add edi, 8
  loop .pdpt
  mov edi, pd                        ; 2048 2 MiB pages
  mov eax, 0x83
  mov ecx, 2048
.pd:
  mov [edi], eax
  add eax, 0x200000
  add edi, 8
  loop .pd
  call long_mode_on
  lgdt [gdt_desc]
  jmp 0x08:bsp64

; PAE, CR3, EFER.LME, paging (from 32-bit protected mode; both processors)
long_mode_on:
  mov eax, pml4
  mov cr3, eax
  mov eax, cr4
  or eax, 0x20
  mov cr4, eax
  mov ecx, 0xc0000080
  rdmsr
  or eax, 0x100
  wrmsr
  mov eax, cr0
  or eax, 0x80000001
  mov cr0, eax
  ret

bits 64
global bsp64:function
bsp64:
  call flat_segments
  mov rsp, stack_top
  call mark_r12
  mov rsi, trampoline_start          ; the trampoline below 1 MiB, where a SIPI can start it
  mov rdi, TRAMPOLINE
  mov rcx, trampoline_end - trampoline_start
  rep movsb
  or dword [r15 + LAPIC_SVR], 0x100  ; software-enable the local APIC
  mov dword [r15 + LAPIC_ICRH], AP_APIC_ID << 24
  mov dword [r15 + LAPIC_ICRL], 0x00004500 ; INIT
  call icr_idle
  mov dword [r15 + LAPIC_ICRH], AP_APIC_ID << 24
  mov dword [r15 + LAPIC_ICRL], 0x00004600 | (TRAMPOLINE >> 12) ; SIPI
  call icr_idle
  mov dword [r15 + LAPIC_ICRH], AP_APIC_ID << 24
  mov dword [r15 + LAPIC_ICRL], 0x00004600 | (TRAMPOLINE >> 12)
  call icr_idle
global bsp_wait:function
bsp_wait:
  pause
  cmp byte [ap_done], 0
  je bsp_wait
  cmp byte [hold], 0
  je bsp_end
  lea rsi, [hold_msg]                ; both processors run: each spins in its own loop
  call puts
global bsp_hold:function
bsp_hold:
  pause
  cmp byte [hold], 0
  jne bsp_hold
bsp_end:
  lea rsi, [done_msg]
  call puts
  mov dx, DEBUG_EXIT
  mov al, [status]
  out dx, al
  cli
  hlt

icr_idle:
  test dword [r15 + LAPIC_ICRL], 0x1000 ; delivery status
  jnz icr_idle
  ret

flat_segments:
  mov r15d, LAPIC
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  ret

; R12 = 0x100 + this processor's local APIC id: a register that differs between the threads
mark_r12:
  mov eax, [r15 + LAPIC_ID]
  shr eax, 24
  lea r12, [rax + 0x100]
  ret

%include "../board/serial64.inc"

; where the application processor arrives in long mode
global ap64:function
ap64:
  call flat_segments
  mov rsp, ap_stack_top
  call mark_r12
global ap_work:function
ap_work:
  mov r13, 0x5a5a                    ; a first instruction to step over
global ap_stepped:function
ap_stepped:
  lock inc byte [ap_done]
global ap_hold:function
ap_hold:
  pause
.test:
  cmp byte [hold], 0
.loop:
  jne ap_hold
.idle:
  cli
  hlt
  jmp .idle

; the application processors' trampoline (copied to TRAMPOLINE)
%include "../board/trampoline.inc"

section .rodata
align 8
gdt:
  dq 0
  dq 0x00af9a000000ffff              ; 0x08: 64-bit code
  dq 0x00cf92000000ffff              ; 0x10: data
gdt_desc:
  dw gdt_desc - gdt - 1
  dq gdt
done_msg: db "smp done", 10, 0
hold_msg: db "both hold", 10, 0

section .data
align 4096
global ap_done:data
ap_done: db 0
global status:data
status: db 0x21
global hold:data
hold: db 0

section .bss
alignb 4096
pml4: resb 4096
pdpt: resb 4096
pd:   resb 4 * 4096
      resb 4096
stack_top:
      resb 4096
ap_stack_top:
