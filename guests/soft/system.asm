; System-level guest for the soft CPU (test/soft/system.test.ts). Entered in real mode at 0:0x8000.
; Reports progress with OUT 0xE0, AL (one code per step); OUT 0xE1 ends the run.
;   1 real mode, 2 protected mode, 3 long mode,
;   0x44 #PF handler saw CR2 = 0x100000 and error code 0 (then maps the page and IRETQs),
;   4 the faulting load retried and read the page,
;   5 SYSCALL came back from CPL 3 (after SYSRET) with RAX = 0x5A at CPL 0,
;   6 the injected vector-32 interrupt ran while HLT waited, 7 after HLT; 0xFF = a check failed.
bits 16
org 0x8000
PML4 equ 0x10000
IDT  equ 0x14000
start16:
  cli
  xor ax, ax
  mov ds, ax
  mov ss, ax
  mov sp, 0x7000
  mov al, 1
  out 0xe0, al
  lgdt [gdtr]
  mov eax, cr0
  or eax, 1
  mov cr0, eax
  jmp dword 0x08:pm32

bits 32
pm32:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov esp, 0x7000
  mov al, 2
  out 0xe0, al
  mov edi, PML4
  xor eax, eax
  mov ecx, 4 * 1024
  rep stosd
  mov dword [PML4], PML4 + 0x1007
  mov dword [PML4 + 0x1000], PML4 + 0x2007
  mov dword [PML4 + 0x2000], PML4 + 0x3007
  xor ecx, ecx
.pt:
  mov eax, ecx
  shl eax, 12
  or eax, 7
  mov [PML4 + 0x3000 + ecx * 8], eax
  inc ecx
  cmp ecx, 512
  jne .pt
  mov dword [PML4 + 0x3000 + 256 * 8], 0    ; 0x100000 not present: the #PF test
  mov dword [0x100000], 0x600dcafe
  mov eax, PML4
  mov cr3, eax
  mov eax, cr4
  or eax, 0x20
  mov cr4, eax
  mov ecx, 0xc0000080
  rdmsr
  or eax, 0x101                 ; LME | SCE
  wrmsr
  mov eax, cr0
  or eax, 0x80000000
  mov cr0, eax
  jmp 0x18:lm64

bits 64
lm64:
  mov ax, 0x20
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov al, 3
  out 0xe0, al
  mov rdi, IDT + 14 * 16
  mov rax, pf_handler
  call set_gate
  mov rdi, IDT + 32 * 16
  mov rax, timer_handler
  call set_gate
  lidt [idtr]
  mov rax, [0x100000]           ; faults once, the handler maps the page
  cmp eax, 0x600dcafe
  jne fail
  mov al, 4
  out 0xe0, al
  ; SYSCALL / SYSRET
  mov ecx, 0xc0000081           ; STAR: SYSRET base 0x28, SYSCALL CS 0x18
  xor eax, eax
  mov edx, 0x00280018
  wrmsr
  mov ecx, 0xc0000082           ; LSTAR
  mov rax, syscall_entry
  mov rdx, rax
  shr rdx, 32
  wrmsr
  mov ecx, 0xc0000084           ; SFMASK: clear IF
  mov eax, 0x200
  xor edx, edx
  wrmsr
  mov rcx, user_code
  mov r11, 0x2
  o64 sysret

user_code:
  mov ax, cs
  and eax, 3
  cmp eax, 3
  jne $                         ; (a CPL-3 failure shows up as no report 5)
  mov eax, 0x5a
  syscall

syscall_entry:
  mov bx, cs
  cmp bx, 0x18
  jne fail
  cmp eax, 0x5a
  jne fail
  mov ax, 0x20
  mov ss, ax
  mov al, 5
  out 0xe0, al
  sti
  hlt
  mov al, 7
  out 0xe0, al
  out 0xe1, al
  jmp $

pf_handler:
  pop rbx                       ; error code
  mov rax, cr2
  cmp rax, 0x100000
  jne fail
  test rbx, rbx
  jnz fail
  mov al, 0x44
  out 0xe0, al
  mov qword [PML4 + 0x3000 + 256 * 8], 0x100007
  invlpg [0x100000]
  iretq

timer_handler:
  mov al, 6
  out 0xe0, al
  iretq

fail:
  mov al, 0xff
  out 0xe0, al
  out 0xe1, al
  jmp $

set_gate:                       ; rdi = gate, rax = handler
  mov [rdi], ax
  mov word [rdi + 2], 0x18
  mov word [rdi + 4], 0x8e00
  shr rax, 16
  mov [rdi + 6], ax
  shr rax, 16
  mov [rdi + 8], eax
  mov dword [rdi + 12], 0
  ret

align 8
gdt:
  dq 0
  dq 0x00cf9a000000ffff         ; 0x08 code32
  dq 0x00cf92000000ffff         ; 0x10 data
  dq 0x00af9a000000ffff         ; 0x18 code64
  dq 0x00cf92000000ffff         ; 0x20 data
  dq 0                          ; 0x28 (32-bit user code, unused)
  dq 0x00cff2000000ffff         ; 0x30 user data
  dq 0x00affa000000ffff         ; 0x38 user code64
gdtr:
  dw $ - gdt - 1
  dd gdt
idtr:
  dw 256 * 16 - 1
  dq IDT
