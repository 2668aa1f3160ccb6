; LAR, LSL and ARPL (test/soft/lar-lsl.test.ts), then RSM and RDPMC, in flat 32-bit protected mode
; (CPL 0), then LAR and LSL in long mode, where system descriptors are 16 bytes and 0x63 is MOVSXD.
; Entered at 0x100000 in flat 32-bit protected mode. Each probe stores two dwords at RESULT + 8k:
; the destination (preset 0xDEADBEEF, or for 64-bit destinations the low half, the high half in
; the next slot) and ZF (0x40 or 0). The descriptors probed are never loaded into a segment
; register, so their accessed bits stay as written. Exceptions are reported on port 0xE0 as
; vector, then error code (dwords), and the guest continues at [next]. OUT 0xE1 ends.
bits 32
org 0x100000
%include "flat32.inc"

RESULT equ 0x310000
IDT equ 0x320000
PT equ 0x330000

%macro PROBE 2-3 0xdeadbeef      ; instruction, selector (in ECX), EAX before
  mov eax, %3
  mov ecx, %2
  %1
  pushfd
  pop edx
  and edx, 0x40
  mov [edi], eax
  mov [edi + 4], edx
  add edi, 8
%endmacro

%macro BOTH 1                   ; LAR and LSL of a selector
  PROBE {lar eax, ecx}, %1
  PROBE {lsl eax, ecx}, %1
%endmacro

start:
  FLAT32_RELOAD gdtr
  mov edi, IDT + 6 * 8          ; #UD and #GP gates
  mov eax, ud_handler
  call gate
  mov edi, IDT + 13 * 8
  mov eax, gp_handler
  call gate
  lidt [idtr]
  mov edi, RESULT
  ; code and data segments: the access rights and the limit, whatever the type
  BOTH 0x28                     ; data DPL 0, byte granular, limit 0x12345
  BOTH 0x30                     ; data DPL 3, 4 KiB granular, limit 1 (0x1fff)
  BOTH 0x38                     ; conforming code DPL 0
  BOTH 0x40                     ; code DPL 0
  BOTH 0xa8                     ; data DPL 0, not present
  ; privilege: max(CPL, RPL) must not exceed the DPL, but for conforming code
  BOTH 0x2b                     ; data DPL 0, RPL 3: ZF = 0
  BOTH 0x33                     ; data DPL 3, RPL 3
  BOTH 0x3b                     ; conforming code DPL 0, RPL 3
  BOTH 0x43                     ; code DPL 0, RPL 3: ZF = 0
  ; system descriptors: LAR takes LDT, TSSs, call and task gates; LSL LDT and TSSs
  BOTH 0x48                     ; LDT
  BOTH 0x50                     ; 16-bit TSS, available
  BOTH 0x58                     ; 16-bit TSS, busy
  BOTH 0x60                     ; 16-bit call gate
  BOTH 0x68                     ; task gate
  BOTH 0x70                     ; 32-bit TSS, available
  BOTH 0x78                     ; 32-bit TSS, busy
  BOTH 0x80                     ; 32-bit call gate
  BOTH 0x88                     ; 32-bit interrupt gate: ZF = 0
  BOTH 0x90                     ; 32-bit trap gate: ZF = 0
  BOTH 0x98                     ; reserved system type 0: ZF = 0
  BOTH 0xa0                     ; reserved system type 8: ZF = 0
  ; selectors that name no descriptor
  BOTH 0                        ; null
  BOTH 3                        ; null, RPL 3
  BOTH 0xb0                     ; beyond the GDT's limit
  BOTH 0x04                     ; in the LDT, with no LDT loaded
  mov ax, 0x48
  lldt ax
  BOTH 0x04                     ; LDT[0]: data DPL 0, limit 0x777
  BOTH 0x0c                     ; beyond the LDT's limit
  ; 16-bit operand size: the low half only; a memory source
  PROBE {o16 lar ax, cx}, 0x28
  PROBE {o16 lsl ax, cx}, 0x28
  mov word [selector], 0x28
  PROBE {lar eax, [selector]}, 0
  PROBE {lsl eax, [selector]}, 0
  ; ARPL r/m16, r16: raises the destination's RPL to the source's (ZF = 1), else ZF = 0
  PROBE {arpl ax, cx}, 3, 0xdead0010
  PROBE {arpl ax, cx}, 1, 0xdead0012
  PROBE {arpl ax, cx}, 1, 0xdead0011
  mov word [selector], 0x20
  PROBE {arpl [selector], cx}, 2
  movzx eax, word [selector]
  mov [edi], eax
  add edi, 8
  ; RSM outside system-management mode: #UD; RDPMC (the soft CPU has no counters: #GP(0))
  mov dword [next], after_rsm
  rsm
after_rsm:
  mov dword [next], after_rdpmc
  xor ecx, ecx
  rdpmc
after_rdpmc:
  mov al, 1
  out 0xe0, al

  ; long mode: identity-map 16 MiB with 2 MiB pages
  mov edi, PT
  xor eax, eax
  mov ecx, 3 * 1024
  rep stosd
  mov dword [PT], PT + 0x1003
  mov dword [PT + 0x1000], PT + 0x2003
  xor ecx, ecx
.pd:
  mov eax, ecx
  shl eax, 21
  or eax, 0x83
  mov [PT + 0x2000 + ecx * 8], eax
  inc ecx
  cmp ecx, 8
  jne .pd
  mov eax, PT
  mov cr3, eax
  mov eax, cr4
  or eax, 0x20
  mov cr4, eax
  mov ecx, 0xc0000080
  rdmsr
  or eax, 0x100
  wrmsr
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  lgdt [gdtr64]
  jmp 0x08:start64

gate:                           ; EDI = the gate, EAX = the handler
  mov [edi], ax
  mov word [edi + 2], 0x08
  mov word [edi + 4], 0x8e00
  shr eax, 16
  mov [edi + 6], ax
  ret

ud_handler:
  push dword 6
  jmp report
gp_handler:
  push dword 13
report:                         ; [esp] = vector, [esp + 4] = error code (#GP) or EIP (#UD)
  mov eax, [esp]
  out 0xe0, eax
  cmp eax, 13
  jne .noerr
  mov eax, [esp + 4]
  out 0xe0, eax
.noerr:
  mov esp, 0xa000
  jmp [next]

bits 64
%macro PROBE64 2                ; instruction, selector (in RCX)
  mov rax, 0xdeadbeefdeadbeef
  mov ecx, %2
  %1
  pushfq
  pop rdx
  and edx, 0x40
  mov [rdi], rax
  mov [rdi + 8], edx
  add rdi, 16
%endmacro
%macro BOTH64 1
  PROBE64 {lar eax, ecx}, %1
  PROBE64 {lsl eax, ecx}, %1
%endmacro

start64:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov edi, RESULT + 0x1000
  BOTH64 0x70                   ; data DPL 0, limit 0x12345
  BOTH64 0x18                   ; LDT (16 bytes)
  BOTH64 0x28                   ; 64-bit TSS, available
  BOTH64 0x38                   ; 64-bit TSS, busy
  BOTH64 0x48                   ; 64-bit call gate: LAR only
  BOTH64 0x58                   ; 16-bit TSS: not in long mode
  BOTH64 0x60                   ; 16-bit call gate: not in long mode
  BOTH64 0x68                   ; task gate: not in long mode
  BOTH64 0x78                   ; 64-bit interrupt gate: ZF = 0
  PROBE64 {lar rax, rcx}, 0x70  ; 64-bit destinations: zero-extended
  PROBE64 {lsl rax, rcx}, 0x70
  PROBE64 {db 0x63, 0xc1}, 0x80000001         ; 63 /r is MOVSXD here (no ARPL): movsxd eax, ecx
  PROBE64 {db 0x48, 0x63, 0xc1}, 0x80000001   ; movsxd rax, ecx
  mov al, 2
  out 0xe0, al
  out 0xe1, al
  jmp $

align 4
next: dd 0
selector: dw 0

align 8
gdt:
  FLAT32_GDT_ENTRIES
  dq 0x004193abcdef2345         ; 0x28 data DPL 0, D, byte granular, limit 0x12345, accessed
  dq 0x00c0f30000000001         ; 0x30 data DPL 3, G D, limit 1, accessed
  dq 0x00409f000000ffff         ; 0x38 conforming code DPL 0, readable, accessed
  dq 0x00409b000000ffff         ; 0x40 code DPL 0, readable, accessed
  dw 0x0007, LDT_ADDR & 0xffff  ; 0x48 LDT, limit 7 (one descriptor)
  db (LDT_ADDR >> 16) & 0xff, 0x82, 0, LDT_ADDR >> 24
  dq 0x000081000000002b         ; 0x50 16-bit TSS, available, limit 0x2b
  dq 0x000083000000002b         ; 0x58 16-bit TSS, busy
  dq 0x0000840000080000         ; 0x60 16-bit call gate (to 0x08:0)
  dq 0x0000850000280000         ; 0x68 task gate
  dq 0x0000890000000067         ; 0x70 32-bit TSS, available, limit 0x67
  dq 0x00008b0000000067         ; 0x78 32-bit TSS, busy
  dq 0x00008c0000080000         ; 0x80 32-bit call gate
  dq 0x00008e0000080000         ; 0x88 32-bit interrupt gate
  dq 0x00008f0000080000         ; 0x90 32-bit trap gate
  dq 0x0000800000000fff         ; 0x98 system type 0 (reserved)
  dq 0x0000880000000fff         ; 0xa0 system type 8 (reserved)
  dq 0x004013000000ffff         ; 0xa8 data DPL 0, not present
gdt_end:
gdtr: dw gdt_end - gdt - 1
  dd gdt
idtr: dw 256 * 8 - 1
  dd IDT

align 8
ldt:
LDT_ADDR equ ldt - $$ + 0x100000
  dq 0x0000930000000777         ; LDT[0] (selector 0x04): data DPL 0, limit 0x777, accessed
  dq 0

align 8
gdt64:
  dq 0
  dq 0x00af9a000000ffff         ; 0x08 code64
  dq 0x00cf92000000ffff         ; 0x10 data
  dw 0x0007, LDT_ADDR & 0xffff  ; 0x18 LDT (16 bytes), limit 7
  db (LDT_ADDR >> 16) & 0xff, 0x82, 0, LDT_ADDR >> 24
  dq 0
  dq 0x0000890000000067, 0      ; 0x28 64-bit TSS, available
  dq 0x00008b0000000067, 0      ; 0x38 64-bit TSS, busy
  dq 0x00008c0000080000, 0      ; 0x48 64-bit call gate
  dq 0x000081000000002b         ; 0x58 16-bit TSS
  dq 0x0000840000080000         ; 0x60 16-bit call gate
  dq 0x0000850000280000         ; 0x68 task gate
  dq 0x004193abcdef2345         ; 0x70 data DPL 0, limit 0x12345
  dq 0x00008e0000080000, 0      ; 0x78 64-bit interrupt gate
gdt64_end:
gdtr64: dw gdt64_end - gdt64 - 1
  dd gdt64
