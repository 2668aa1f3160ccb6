; PUSHA/PUSHAD and POPA/POPAD that fault part-way (test/soft/pusha-fault.test.ts): the stack is
; a present page at 0x200000 between two pages that are not (0x1FF000, 0x201000), so with ESP a
; few slots from an edge the first pushes or pops succeed and a later one raises #PF. The probes
; run at CPL 3 (paging with user pages; the #PF handler at CPL 0 gets its stack from the TSS), with
; every GPR set to a known value; the handler stores, per case at RESULT + 64k: the vector, the
; error code, CR2, the ESP of the faulting instruction (from the frame) and EAX ECX EDX EBX EBP
; ESI EDI as the fault left them, then returns to CPL 3 at [next]. OUT 0xE1 ends.
; Entered at 0x100000 in flat 32-bit protected mode.
bits 32
org 0x100000
%include "flat32.inc"

RESULT equ 0x310000
IDT equ 0x320000
PD equ 0x330000
PT equ 0x331000
TSS equ 0x332000
STACK_PAGE equ 0x200000

start:
  FLAT32_RELOAD gdtr
  ; 4 MiB of user pages but 0x1FF000 and 0x201000
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
  mov dword [PT + (STACK_PAGE - 0x1000) / 0x1000 * 4], 0
  mov dword [PT + (STACK_PAGE + 0x1000) / 0x1000 * 4], 0
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
  ; #PF and #GP gates
  mov edi, IDT + 14 * 8
  mov eax, pf_handler
  call gate
  mov edi, IDT + 13 * 8
  mov eax, gp_handler
  call gate
  lidt [idtr]
  mov ebx, RESULT
  ; to CPL 3 (IOPL 3: it reports with OUT)
  push 0x23
  push 0x180000
  push 0x3002
  push 0x1b
  push user
  iret

gate:
  mov [edi], ax
  mov word [edi + 2], 0x08
  mov word [edi + 4], 0x8e00
  shr eax, 16
  mov [edi + 6], ax
  ret

%macro SETREGS 1                ; every GPR but ESP = %1 * 0x11111111 + register number
  mov eax, %1 * 0x11111111 + 0
  mov ecx, %1 * 0x11111111 + 1
  mov edx, %1 * 0x11111111 + 2
  mov ebx, %1 * 0x11111111 + 3
  mov ebp, %1 * 0x11111111 + 5
  mov esi, %1 * 0x11111111 + 6
  mov edi, %1 * 0x11111111 + 7
%endmacro

user:
  mov ax, 0x23
  mov ds, ax
  mov es, ax
  mov dword [next], case2
  SETREGS 1
  mov esp, STACK_PAGE + 12      ; three dwords fit, the fourth faults
  pushad
  out 0xe1, al                  ; no fault: end early (the test fails)
case2:
  mov dword [next], case3
  SETREGS 2
  mov esp, STACK_PAGE + 6       ; three words fit
  o16 pusha
  out 0xe1, al
case3:
  mov dword [next], case4
  SETREGS 3
  mov esp, STACK_PAGE + 0x1000 - 12
  popad
  out 0xe1, al
case4:
  mov dword [next], done
  SETREGS 4
  mov esp, STACK_PAGE + 0x1000 - 6
  o16 popa
  out 0xe1, al
done:
  mov al, 0xdd
  out 0xe0, al
  out 0xe1, al
  jmp $

pf_handler:
  push 14
  jmp record
gp_handler:
  push 13
record:                         ; [esp]: vector, error code, EIP, CS, EFLAGS, ESP, SS
  push eax
  push ebx
  mov ax, 0x10
  mov ds, ax
  mov ebx, [cases]
  mov eax, [esp + 8]
  mov [ebx], eax                ; vector
  mov eax, [esp + 12]
  mov [ebx + 4], eax            ; error code
  mov eax, cr2
  mov [ebx + 8], eax
  mov eax, [esp + 12 + 16]
  mov [ebx + 12], eax           ; ESP of the faulting instruction
  mov eax, [esp + 4]
  mov [ebx + 16], eax           ; EAX
  mov [ebx + 20], ecx
  mov [ebx + 24], edx
  mov eax, [esp]
  mov [ebx + 28], eax           ; EBX
  mov [ebx + 32], ebp
  mov [ebx + 36], esi
  mov [ebx + 40], edi
  add dword [cases], 64
  mov eax, [next]
  mov [esp + 12 + 4], eax       ; return to [next] with a usable stack
  mov dword [esp + 12 + 16], 0x180000
  mov ax, 0x23                  ; the user's DS again
  mov ds, ax
  pop ebx
  pop eax
  add esp, 8                    ; vector, error code
  iret

align 4
next: dd 0
cases: dd RESULT

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
