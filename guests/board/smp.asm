; SMP guest for the board tests: a multiboot kernel that goes to long mode, finds the processors
; in the MP table, prints its own local APIC id, starts every other processor with INIT-SIPI-SIPI
; into a real-mode trampoline at 0x8000 that climbs to long mode and prints that processor's
; APIC id, waits for all of them, then writes the processor count to the debug-exit port.
; With the command line "apfault", each application processor triple-faults instead.
; With "xmc" (cross-modifying code), the first application processor runs a hot loop calling
; `patched` (mov eax, 1) until the BSP rewrites its immediate to 2 and says so; the AP then
; serializes (IRETQ to itself) and must see 2 from its next call: "xmc ok", else "xmc stale" and
; 0x3f to the debug-exit port.
; With "atomic", every processor (the BSP once it started the others) runs ATOMIC_N rounds of
; locked read-modify-writes on shared counters (lock xadd, lock inc, lock cmpxchg, cmpxchg16b, a
; misaligned lock add, and a plain increment under an xchg spinlock released by a plain store),
; then the BSP checks each total is exactly ATOMIC_N * processors and prints "atomic ok" (else
; "atomic lost" and writes 0x7e to the debug-exit port instead of the count).
; With "count" (the snapshot tests), every processor counts in R12 and prints "cN T" each time
; its count passes another COUNT_TICK (T = count / COUNT_TICK, from the register: a restored
; processor goes on from its saved T); application processors count with interrupts enabled. A
; byte received on COM1 (the BSP polls LSR) makes the BSP send a fixed IPI (vector IPI_VECTOR)
; to every other processor; the AP's handler counts it, the AP prints "ipi N" and writes 0x21
; to the debug-exit port.
bits 32
org 0x100000

MB_MAGIC   equ 0x1badb002
MB_FLAGS   equ 0x00010002
LAPIC      equ 0xfee00000
LAPIC_ID   equ 0x20                  ; register offsets, used as [r15 + ...]: an absolute
LAPIC_SVR  equ 0xf0                  ; 0xfee00000 would be a sign-extended disp32 in long mode
LAPIC_ICRL equ 0x300
LAPIC_ICRH equ 0x310
TRAMPOLINE equ 0x8000
DEBUG_EXIT equ 0x501
COUNT_TICK equ 0x40000
IPI_VECTOR equ 0x40
LAPIC_EOI  equ 0xb0
%ifndef ATOMIC_N
ATOMIC_N   equ 100000
%endif

header:
  dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
  dd header, header, load_end, bss_end, start32

start32:
  mov esp, stack_top
  mov [mb_info], ebx                 ; multiboot_info: flags at 0, cmdline at 16 (flag bit 2)
  ; identity-map 4 GiB with 2 MiB pages (the local APIC lives at 0xfee00000)
  mov edi, pml4
  mov ecx, 6 * 4096 / 4
  xor eax, eax
  rep stosd
  mov dword [pml4], pdpt + 3
  mov edi, pdpt
  mov eax, pd + 3
  mov ecx, 4
.pdpt:
  mov [edi], eax
  add eax, 4096
  add edi, 8
  loop .pdpt
  mov edi, pd
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

; PAE, CR3, EFER.LME, paging (from 32-bit protected mode; used by the BSP and the APs)
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
bsp64:
  call flat_segments
  mov rsp, stack_top
  mov eax, [mb_info]
  test dword [rax], 4
  jz .no_cmdline
  mov eax, [rax + 16]
  cmp dword [rax], 'xmc'
  jne .not_xmc
  mov byte [xmc_mode], 1
.not_xmc:
  cmp dword [rax], 'atom'
  jne .not_atomic
  mov byte [atomic_mode], 1
.not_atomic:
  cmp dword [rax], 'coun'
  jne .not_count
  mov byte [count_mode], 1
.not_count:
  cmp dword [rax], 'apfa'
  jne .no_cmdline
  mov byte [ap_fault], 1
.no_cmdline:
  call find_mp_table
  mov rsi, mp_msg
  call puts_locked_start
  mov al, [cpu_count]
  add al, '0'
  call putc
  mov rsi, mp_msg2
  call puts
  call unlock
  call say_cpu
  ; copy the trampoline below 1 MiB and start every other processor
  mov rsi, trampoline_start
  mov rdi, TRAMPOLINE
  mov rcx, trampoline_end - trampoline_start
  rep movsb
  or dword [r15 + LAPIC_SVR], 0x100        ; software-enable the local APIC
  mov eax, [r15 + LAPIC_ID]
  shr eax, 24
  mov [bsp_id], al
  xor ebx, ebx
.next_ap:
  cmp bl, [cpu_count]
  jae .wait
  movzx eax, byte [apic_ids + rbx]
  inc ebx
  cmp al, [bsp_id]
  je .next_ap
  shl eax, 24
  mov cl, [ap_started]
  mov [r15 + LAPIC_ICRH], eax
  mov dword [r15 + LAPIC_ICRL], 0x00004500 ; INIT
  call icr_idle
  mov [r15 + LAPIC_ICRH], eax
  mov dword [r15 + LAPIC_ICRL], 0x00004600 | (TRAMPOLINE >> 12) ; SIPI
  call icr_idle
  mov [r15 + LAPIC_ICRH], eax
  mov dword [r15 + LAPIC_ICRL], 0x00004600 | (TRAMPOLINE >> 12)
  call icr_idle
  ; the trampoline has one stack: wait until this AP has left it before waking the next
.started:
  cmp cl, [ap_started]
  je .started
  jmp .next_ap
.wait:
  cmp byte [count_mode], 0
  jne count_bsp
  cmp byte [xmc_mode], 0
  je .no_xmc
  call xmc_bsp
.no_xmc:
  cmp byte [atomic_mode], 0
  je .wait_up
  call atomic_work
.wait_up:
  mov al, [cpus_up]
  inc al                             ; the BSP counts itself
  cmp al, [cpu_count]
  jb .wait_up
  mov rsi, done_msg
  call puts_locked_start
  call unlock
  movzx eax, byte [cpu_count]
  cmp byte [atomic_mode], 0
  je .no_check
  call atomic_check
.no_check:
  cmp byte [xmc_mode], 0
  je .exit
  call xmc_check
.exit:
  mov dx, DEBUG_EXIT
  out dx, al
  cli
  hlt

icr_idle:
  test dword [r15 + LAPIC_ICRL], 0x1000    ; delivery status
  jnz icr_idle
  ret

flat_segments:
  mov r15d, LAPIC
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  ret

; "_MP_" on a 16-byte boundary in the EBDA's last KiB or the BIOS area; records the enabled processors
find_mp_table:
  mov rsi, 0x9fc00
  mov rcx, 0xa0000
  call .scan
  jz .found
  mov rsi, 0xf0000
  mov rcx, 0x100000
  call .scan
  jz .found
  mov byte [cpu_count], 1             ; no table: a lone processor
  mov byte [apic_ids], 0
  ret
.scan:
  cmp dword [rsi], '_MP_'
  je .hit
  add rsi, 16
  cmp rsi, rcx
  jb .scan
  or esi, esi                        ; ZF clear: not found (rsi is never 0 here)
  ret
.hit:
  xor eax, eax                       ; ZF set
  ret
.found:
  mov eax, [rsi + 4]                 ; the configuration table
  movzx ecx, word [rax + 34]         ; entry count
  lea rbx, [rax + 44]
  xor edx, edx
.entry:
  test ecx, ecx
  jz .end
  cmp byte [rbx], 0                  ; processor entry: 20 bytes
  jne .other
  test byte [rbx + 3], 1             ; enabled
  jz .skip
  mov al, [rbx + 1]
  mov [apic_ids + rdx], al
  inc edx
.skip:
  add rbx, 20
  dec ecx
  jmp .entry
.other:
  add rbx, 8
  dec ecx
  jmp .entry
.end:
  mov [cpu_count], dl
  ret

; prints "cpu N" for this processor's local APIC id
say_cpu:
  mov rsi, cpu_msg
  call puts_locked_start
  mov eax, [r15 + LAPIC_ID]
  shr eax, 24
  add al, '0'
  call putc
  mov al, 10
  call putc
  call unlock
  ret

; takes the console lock, then prints the string at rsi
puts_locked_start:
  lock bts dword [console_lock], 0
  jc puts_locked_start
  jmp puts

unlock:
  mov dword [console_lock], 0
  ret

%include "serial64.inc"

; where an application processor arrives in long mode
ap64:
  call flat_segments
  cmp byte [ap_fault], 0
  je .fine
  lidt [null_idt]                    ; #UD with an empty IDT: triple fault
  ud2
.fine:
  mov eax, [r15 + LAPIC_ID]
  shr eax, 24
  inc eax
  shl eax, 12
  lea rsp, [ap_stacks + rax]         ; a page of stack per APIC id
  lock inc byte [ap_started]         ; off the trampoline's stack: the BSP may wake the next
  call say_cpu
  cmp byte [count_mode], 0
  jne count_ap
  cmp byte [xmc_mode], 0
  je .no_xmc
  call xmc_ap
.no_xmc:
  cmp byte [atomic_mode], 0
  je .counted
  call atomic_work
.counted:
  lock inc byte [cpus_up]
.idle:
  cli
  hlt
  jmp .idle

; ---- "count" mode ----
count_bsp:
  xor r12d, r12d
.loop:
  inc r12
  test r12d, COUNT_TICK - 1
  jnz .loop
  call print_tick
  mov dx, COM1 + 5
  in al, dx
  test al, 1                         ; a byte received
  jz .loop
  mov dx, COM1
  in al, dx
  mov dword [r15 + LAPIC_ICRH], 0
  mov dword [r15 + LAPIC_ICRL], 0x000c4000 | IPI_VECTOR ; fixed, all but self
  call icr_idle
  jmp .loop

count_ap:
  mov rax, ipi_handler               ; the IDT's gate for IPI_VECTOR (64-bit interrupt gate)
  mov word [idt + IPI_VECTOR * 16], ax
  mov word [idt + IPI_VECTOR * 16 + 2], 0x08
  mov word [idt + IPI_VECTOR * 16 + 4], 0x8e00
  shr rax, 16
  mov word [idt + IPI_VECTOR * 16 + 6], ax
  shr rax, 16
  mov dword [idt + IPI_VECTOR * 16 + 8], eax
  lidt [idt_desc]
  or dword [r15 + LAPIC_SVR], 0x1ff   ; software-enable this local APIC
  lock inc byte [cpus_up]
  xor r12d, r12d
  sti
.loop:
  inc r12
  test r12d, COUNT_TICK - 1
  jnz .loop
  call print_tick
  cmp byte [ipi_seen], 0
  je .loop
  cli
  mov rsi, ipi_msg
  call puts_locked_start
  mov al, [ipi_seen]
  add al, '0'
  call putc
  mov al, 10
  call putc
  call unlock
  mov al, 0x21
  mov dx, DEBUG_EXIT
  out dx, al
  hlt

ipi_handler:
  lock inc byte [ipi_seen]
  mov dword [r15 + LAPIC_EOI], 0
  iretq

; prints "cN T" (N: this processor's APIC id, T: R12 / COUNT_TICK in decimal)
print_tick:
  push rax
  push rcx
  push rdx
  push rsi
  mov rsi, tick_msg
  call puts_locked_start
  mov eax, [r15 + LAPIC_ID]
  shr eax, 24
  add al, '0'
  call putc
  mov al, ' '
  call putc
  mov rax, r12
  shr rax, 18                         ; log2(COUNT_TICK)
  lea rsi, [digits_end]
  mov ecx, 10
.digit:
  xor edx, edx
  div rcx
  add dl, '0'
  dec rsi
  mov [rsi], dl
  test rax, rax
  jnz .digit
.out:
  mov al, [rsi]
  call putc
  inc rsi
  cmp rsi, digits_end
  jb .out
  mov al, 10
  call putc
  call unlock
  pop rsi
  pop rdx
  pop rcx
  pop rax
  ret

; ATOMIC_N rounds of every kind of locked update (see the file comment)
atomic_work:
  mov r8d, ATOMIC_N
.round:
  mov eax, 1
  lock xadd [c_xadd], eax
  lock inc qword [c_inc]
  lock add dword [c_misaligned], 1
  mov rax, [c_cas]
.cas:
  lea rdx, [rax + 1]
  lock cmpxchg [c_cas], rdx
  jnz .cas
  mov rax, [c_16]
  mov rdx, [c_16 + 8]
.cas16:
  lea rbx, [rax + 1]
  lea rcx, [rdx + 2]
  lock cmpxchg16b [c_16]
  jnz .cas16
.spin:
  mov eax, 1
  xchg eax, [spinlock]
  test eax, eax
  jnz .spin
  mov rax, [c_plain]                 ; not atomic: the lock protects it
  inc rax
  mov [c_plain], rax
  mov dword [spinlock], 0            ; released by a plain store, as x86 spinlocks are
  dec r8d
  jnz .round
  ret

; in: eax = processor count; out: eax = the count if every total is exact, else 0x3f
atomic_check:
  mov ecx, eax
  imul rcx, rcx, ATOMIC_N
  cmp [c_xadd], ecx
  jne .bad
  cmp [c_inc], rcx
  jne .bad
  cmp [c_misaligned], ecx
  jne .bad
  cmp [c_cas], rcx
  jne .bad
  cmp [c_16], rcx
  jne .bad
  lea rdx, [rcx * 2]
  cmp [c_16 + 8], rdx
  jne .bad
  cmp [c_plain], rcx
  jne .bad
  push rax
  mov rsi, atomic_ok_msg
  call puts
  pop rax
  ret
.bad:
  mov rsi, atomic_bad_msg
  call puts
  mov eax, 0x3f
  ret

; the AP's side: a hot loop over `patched` until told, then IRETQ to itself, then one more call
xmc_ap:
.hot:
  call patched
  mov [xmc_before], eax
  inc qword [xmc_rounds]
  cmp byte [xmc_go], 0
  je .hot
  mov rax, rsp
  push 0x10                          ; SS
  push rax                           ; RSP
  pushfq
  push 0x08                          ; CS
  lea rax, [rel .serialized]
  push rax
  iretq
.serialized:
  call patched
  mov [xmc_after], eax
  ret

; the BSP's side: once the AP's loop is hot (compiled), rewrite the immediate and tell it
xmc_bsp:
  cmp qword [xmc_rounds], 100000
  jb xmc_bsp
  mov dword [patched + 1], 2
  mov byte [xmc_go], 1
  ret

; in: eax = processor count; out: eax as is if the AP ran the new code, else 0x3f
xmc_check:
  cmp dword [xmc_before], 1
  jne .stale
  cmp dword [xmc_after], 2
  jne .stale
  push rax
  mov rsi, xmc_ok_msg
  call puts
  pop rax
  ret
.stale:
  mov rsi, xmc_bad_msg
  call puts
  mov eax, 0x3f
  ret

align 64
patched:
  mov eax, 1                         ; B8 imm32: the BSP rewrites the immediate
  ret
align 64

xmc_ok_msg     db "xmc ok", 10, 0
xmc_bad_msg    db "xmc stale", 10, 0
atomic_ok_msg  db "atomic ok", 10, 0
atomic_bad_msg db "atomic lost", 10, 0
mp_msg     db "mp table: ", 0
mp_msg2    db " cpus", 10, 0
cpu_msg    db "cpu ", 0
done_msg   db "all cpus up", 10, 0
tick_msg   db "c", 0
ipi_msg    db "ipi ", 0

align 8
gdt:
  dq 0
  dq 0x00af9a000000ffff              ; 0x08: 64-bit code
  dq 0x00cf92000000ffff              ; 0x10: data
  dq 0x00cf9a000000ffff              ; 0x18: 32-bit code
gdt_desc:
  dw gdt_desc - gdt - 1
  dq gdt
null_idt:
  dw 0
  dq 0
idt_desc:
  dw 256 * 16 - 1
  dq idt

; the application processors' trampoline (copied to TRAMPOLINE)
%include "trampoline.inc"
load_end:

section .bss follows=.text nobits
alignb 4096
pml4:      resb 4096
pdpt:      resb 4096
pd:        resb 4 * 4096
ap_stacks: resb 65 * 4096
           resb 4096
stack_top:
console_lock: resd 1
cpu_count: resb 1
cpus_up:   resb 1
bsp_id:    resb 1
ap_fault:  resb 1
ap_started: resb 1
mb_info:   resd 1
apic_ids:  resb 64
atomic_mode: resb 1
xmc_mode:  resb 1
xmc_go:    resb 1
count_mode: resb 1
ipi_seen:  resb 1
digits:    resb 24
digits_end:
alignb 16
idt:       resb 256 * 16
alignb 8
xmc_rounds: resq 1
xmc_before: resd 1
xmc_after: resd 1
alignb 64
c_xadd:    resd 1
           resd 1
c_inc:     resq 1
c_cas:     resq 1
           resb 5
c_misaligned: resd 1                 ; at an odd address: the global-lock path
           resb 3
alignb 16
c_16:      resq 2
c_plain:   resq 1
spinlock:  resd 1
bss_end:
