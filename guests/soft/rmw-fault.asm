; Read-modify-write instructions whose write faults (test/soft/rmw-fault.test.ts): each case's
; destination is on its own read-only user page (a copy-on-write page after fork looks like this),
; so the read succeeds and the write raises #PF. The fault must leave the flags as they were before
; the instruction: the frame's EFLAGS are what the instruction runs with again once the handler
; has made the page writable (as a kernel's copy-on-write does) and returned to it; ADC, SBB, RCL
; and RCR read CF. The probes run at CPL 3 with every status flag set (POPFD); the #PF handler
; stores, per case at RESULT + 32k: the vector, the error code and the frame's status flags, then
; makes the page writable and returns to the faulting instruction. After it the probe stores the
; destination's value and its own status flags. (Compiled code: rmw-fault64.asm.)
; OUT 0xE1 ends. Entered at 0x100000 in flat 32-bit protected mode.
bits 32
org 0x100000
%include "flat32.inc"

RESULT equ 0x310000
IDT equ 0x320000
PD equ 0x330000
PT equ 0x331000
TSS equ 0x332000
RO_PAGES equ 0x200000           ; case k's destination: the page at RO_PAGES + k * 0x1000
CASES equ 7
ALL_STATUS equ 0x3000 | 0x202 | 0x8d5 ; IOPL 3, IF, OF SF ZF AF PF CF

start:
  FLAT32_RELOAD gdtr
  ; the destinations' values, written before paging (CPL 0 writes anywhere)
  mov dword [RO_PAGES + 0 * 0x1000], 1          ; ADC 1 + 1 + CF
  mov dword [RO_PAGES + 1 * 0x1000], 5          ; SBB 5 - 1 - CF
  mov dword [RO_PAGES + 2 * 0x1000], 0x40000000 ; RCL by 1
  mov dword [RO_PAGES + 3 * 0x1000], 2          ; RCR by CL = 1
  mov dword [RO_PAGES + 4 * 0x1000], 1          ; ADD 1 + 1
  mov dword [RO_PAGES + 5 * 0x1000], 0x7fffffff ; INC
  mov dword [RO_PAGES + 6 * 0x1000], 0          ; BTS bit 3
  ; 4 MiB of user pages, writable but the destinations
  mov edi, PT
  xor ecx, ecx
.pte:
  mov eax, ecx
  shl eax, 12
  or eax, 7
  mov [edi + ecx * 4], eax
  inc ecx
  cmp ecx, 1024
  jne .pte
  mov ecx, CASES
  mov edi, PT + RO_PAGES / 0x1000 * 4
.ro:
  and dword [edi], ~2                           ; user, present, read-only
  add edi, 4
  loop .ro
  mov edi, PD
  xor eax, eax
  mov ecx, 1024
  rep stosd
  mov dword [PD], PT + 7
  mov eax, PD
  mov cr3, eax
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  ; TSS: SS0:ESP0 for the handler
  mov dword [TSS + 4], 0x9000
  mov dword [TSS + 8], 0x10
  mov word [TSS + 0x66], 0x68
  mov ax, 0x28
  ltr ax
  mov edi, IDT + 14 * 8
  mov eax, pf_handler
  mov [edi], ax
  mov word [edi + 2], 0x08
  mov word [edi + 4], 0x8e00
  shr eax, 16
  mov [edi + 6], ax
  lidt [idtr]
  ; to CPL 3 (IOPL 3: it reports with OUT)
  push 0x23
  push 0x180000
  push 0x3002
  push 0x1b
  push user
  iret

; One probe: every status flag set, the instruction (%1) on ESI = case %2's page, then its value
; and the flags it left at RESULT + 32 * %2 + 12 and + 16.
%macro PROBE 2
  mov esi, RO_PAGES + %2 * 0x1000
  push ALL_STATUS
  popfd
  %1
  pushfd
  pop edx
  and edx, 0x8d5
  mov ebx, [esi]
  mov [RESULT + 32 * %2 + 12], ebx
  mov [RESULT + 32 * %2 + 16], edx
%endmacro

user:
  mov ax, 0x23
  mov ds, ax
  mov es, ax
  mov eax, 1
  mov ecx, 1
  PROBE {adc dword [esi], eax}, 0
  PROBE {sbb dword [esi], eax}, 1
  PROBE {rcl dword [esi], 1}, 2
  PROBE {rcr dword [esi], cl}, 3
  PROBE {add dword [esi], eax}, 4
  PROBE {inc dword [esi]}, 5
  PROBE {bts dword [esi], 3}, 6
  mov al, 0xdd
  out 0xe0, al
  out 0xe1, al
  jmp $

pf_handler:                     ; [esp]: error code, EIP, CS, EFLAGS, ESP, SS
  push eax
  push ebx
  push ecx
  mov ax, 0x10
  mov ds, ax
  mov eax, cr2
  sub eax, RO_PAGES
  shr eax, 12                   ; the case
  cmp eax, CASES
  jae .wild
  mov ebx, eax
  shl ebx, 5
  add ebx, RESULT
  mov dword [ebx], 14
  mov ecx, [esp + 12]
  mov [ebx + 4], ecx            ; error code
  mov ecx, [esp + 12 + 12]
  and ecx, 0x8d5
  mov [ebx + 8], ecx            ; the frame's status flags
  or dword [PT + RO_PAGES / 0x1000 * 4 + eax * 4], 2
  mov eax, cr2
  invlpg [eax]
  mov ax, 0x23
  mov ds, ax
  pop ecx
  pop ebx
  pop eax
  add esp, 4                    ; the error code
  iret                          ; the instruction again
.wild:
  mov al, 0xee
  out 0xe0, al
  out 0xe1, al
  jmp $

align 8
gdt:
  FLAT32_GDT_ENTRIES
  dw 0x67, TSS & 0xffff         ; 0x28 32-bit TSS
  db (TSS >> 16) & 0xff, 0x89, 0, 0
gdt_end:
gdtr: dw gdt_end - gdt - 1
  dd gdt
idtr: dw 256 * 8 - 1
  dd IDT
