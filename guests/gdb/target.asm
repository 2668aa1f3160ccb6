; The guest the gdb tests and the README's session debug: a multiboot kernel in an ELF64 file with
; its symbols (nasm -f elf64, then ld -T guests/gdb/target.ld), so gdb names its code and data:
; `file target.elf`, `break sum`, `watch (long)value`, `x/s &msg`.
;
; It enters in 32-bit protected mode (multiboot), switches to long mode (the first 1 GiB
; identity-mapped), adds two numbers, stores the sum in `value`, prints "spin" on COM1 and spins
; until `go` is not zero (a debugger writes it). Then it prints `msg` (which a debugger may
; overwrite) and ends the machine through the debug-exit port with `status` (exit code
; 2 * status + 1).
MB_MAGIC   equ 0x1badb002
MB_FLAGS   equ 0x00000002            ; memory info (an ELF: the loader reads the program headers)
COM1       equ 0x3f8
DEBUG_EXIT equ 0x501

section .multiboot progbits alloc noexec nowrite align=4
  dd MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)

section .text
bits 32
global _start:function
_start:
  mov esp, stack_top
  mov edi, pml4                      ; zero the three tables
  mov ecx, 3 * 4096 / 4
  xor eax, eax
  rep stosd
  mov dword [pml4], pdpt + 3
  mov dword [pdpt], pd + 3
  mov edi, pd                        ; 512 2 MiB pages
  mov eax, 0x83
  mov ecx, 512
.map:
  mov [edi], eax
  add eax, 0x200000
  add edi, 8
  loop .map
  mov eax, pml4
  mov cr3, eax
  mov eax, cr4
  or eax, 0x20                       ; PAE
  mov cr4, eax
  mov ecx, 0xc0000080                ; EFER.LME
  rdmsr
  or eax, 0x100
  wrmsr
  mov eax, cr0
  or eax, 0x80000001                 ; PG, PE
  mov cr0, eax
  lgdt [gdt_desc]
  jmp 0x08:start64

bits 64
global start64:function
start64:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov rsp, stack_top
  mov rax, 0x1111
  mov rbx, 0x2222
global sum:function
sum:
  add rax, rbx
global store:function
store:
  mov [value], rax
  lea rsi, [spinning]
  call print
global spin:function
spin:
  mov rdx, [go]
  test rdx, rdx
  jz spin
global done:function
done:
  lea rsi, [msg]
  call print
  mov dx, DEBUG_EXIT
  mov al, [status]
  out dx, al
  hlt

; Prints the zero-terminated string at RSI on COM1.
global print:function
print:
  mov dx, COM1
.next:
  lodsb
  test al, al
  jz .end
  out dx, al
  jmp .next
.end:
  ret

section .rodata
align 8
gdt:
  dq 0
  dq 0x00af9a000000ffff              ; 0x08: 64-bit code
  dq 0x00cf92000000ffff              ; 0x10: data
gdt_desc:
  dw gdt_desc - gdt - 1
  dq gdt
spinning: db "spin", 10, 0

section .data
align 4096                           ; data apart from code (a watched page holds no code)
global value:data
value: dq 0
global go:data
go: dq 0
global status:data
status: db 0
global msg:data
msg: db "done", 10, 0

section .bss
alignb 4096
pml4: resb 4096
pdpt: resb 4096
pd:   resb 4096
      resb 4096
stack_top:
