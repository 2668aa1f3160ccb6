; The 64-bit runner of the opcode walk (test/soft/opcode-walk.ts): runs probe k = 0, 1, ... in
; turn, each from the same state, and records how it ended. A probe is a slot of code the test
; wrote (a set-up, the instruction, then INT 0xF0); the runner enters it by IRETQ with the probe's
; CS, SS, RFLAGS and registers (from the header, written by the test), so probes run at CPL 0 or
; CPL 3. Every IDT gate (IST 1, so a probe's RSP never matters) leads to a stub that records the
; vector at RESULTS + k (0xF0: the instruction completed and reached the slot's INT 0xF0, whose
; gate alone has DPL 3) and the error code at ERRCODES + 4k (-1 without one); then `next`
; restores the scratch memory, the stack above STACK_TOP, segments, x87/SSE state and registers,
; and enters probe k + 1. After the last, OUT 0xE1; OUT 0xE2 if `next` itself faulted.
; Entered in flat 32-bit protected mode at RUNNER (multiboot's state, paging off); the layout
; constants come from the test (nasm -D).
bits 32
org RUNNER

  jmp start
  times 0x10 - ($ - $$) db 0
hdr:                            ; RUNNER + 0x10: read and written by the test
  dd 0x4b57504f                 ; 'OPWK'
nprobes: dd 0                   ; +0x14 (test)
  dd landing                    ; +0x18: INT 0xF0, for control transfers to "after the instruction"
cur: dd 0                       ; +0x1c
  dd gdt                        ; +0x20
first: dd 0                     ; +0x24 (test): the probe to start with
  times 0x30 - ($ - $$) db 0
cpuid_out: times 6 * 16 db 0    ; +0x30: leaves 0, 1, 7, 0x80000000, 0x80000001, 0x80000008 (EAX EBX ECX EDX)
  times 0x100 - ($ - $$) db 0
regs: times 16 dq 0             ; +0x100 (test): RAX RCX RDX RBX (RSP) RBP RSI RDI R8-R15
pflags: dq 2                    ; +0x180 (test)
pcs: dq 0x08                    ; +0x188 (test)
pss: dq 0x10                    ; +0x190 (test)
pds: dq 0x10                    ; +0x198 (test): DS ES FS GS
mxcsr_init: dd 0x1f80           ; +0x1a0
in_next: dd 0                   ; +0x1a4
errmask:                        ; +0x1a8: the vectors that push an error code (8, 10-14, 17, 21, 29, 30)
  dd (1 << 8) | (0x1f << 10) | (1 << 17) | (1 << 21) | (1 << 29) | (1 << 30), 0, 0, 0, 0, 0, 0, 0

align 8
gdt:
  dq 0
  dq 0x00af9a000000ffff         ; 0x08 code64 DPL 0
  dq 0x00cf92000000ffff         ; 0x10 data DPL 0
  dq 0x00cffa000000ffff         ; 0x18 code32 DPL 3 (SYSRET and SYSEXIT to compatibility mode)
  dq 0x00cff2000000ffff         ; 0x20 data DPL 3
  dq 0x00affa000000ffff         ; 0x28 code64 DPL 3
  dw 0x67, TSS1 & 0xffff        ; 0x30 the runner's TSS (64-bit, available)
  db (TSS1 >> 16) & 0xff, 0x89, 0, 0
  dq 0
  dw 0x67, TSS2 & 0xffff        ; 0x40 a second one, for LTR probes
  db (TSS2 >> 16) & 0xff, 0x89, 0, 0
  dq 0
gdt_end:
gdtr: dw gdt_end - gdt - 1
  dq gdt
idtr: dw 256 * 16 - 1
  dq IDT

start:
  mov edi, PT                   ; 16 MiB identity-mapped with 2 MiB user pages
  xor eax, eax
  mov ecx, 3 * 1024
  rep stosd
  mov dword [PT], PT + 0x1007
  mov dword [PT + 0x1000], PT + 0x2007
  xor ecx, ecx
.pd:
  mov eax, ecx
  shl eax, 21
  or eax, 0x87
  mov [PT + 0x2000 + ecx * 8], eax
  inc ecx
  cmp ecx, 8
  jne .pd
  mov eax, PT
  mov cr3, eax
  mov eax, 0x620                ; PAE OSFXSR OSXMMEXCPT
  mov cr4, eax
  mov ecx, 0xc0000080
  rdmsr
  or eax, 0x101                 ; LME SCE
  wrmsr
  mov eax, 0x80000023           ; PG NE MP PE
  mov cr0, eax
  lgdt [gdtr]
  jmp 0x08:start64

bits 64
start64:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov rsp, IST_TOP
  mov edi, TSS1
  call tss_init
  mov edi, TSS2
  call tss_init
  mov ax, 0x30
  ltr ax
  ; IDT: interrupt gates to the stubs, IST 1, DPL 0 but for 0xF0
  mov edi, IDT
  mov eax, stubs
  xor ecx, ecx
.idt:
  mov [rdi], ax
  mov word [rdi + 2], 0x08
  mov byte [rdi + 4], 1
  mov byte [rdi + 5], 0x8e
  cmp ecx, 0xf0
  jne .dpl0
  mov byte [rdi + 5], 0xee
.dpl0:
  mov edx, eax
  shr edx, 16
  mov [rdi + 6], dx
  mov qword [rdi + 8], 0
  add eax, 16
  add rdi, 16
  inc ecx
  cmp ecx, 256
  jne .idt
  lidt [idtr]
  ; SYSCALL and SYSENTER land on INT 0xF0; SYSRET and SYSEXIT go to user selectors 0x18 and up
  mov ecx, 0xc0000081           ; STAR
  mov eax, landing
  mov edx, 0x00180008
  wrmsr
  mov ecx, 0xc0000082           ; LSTAR
  xor edx, edx
  wrmsr
  mov ecx, 0xc0000083           ; CSTAR
  wrmsr
  mov ecx, 0xc0000084           ; SFMASK: none
  xor eax, eax
  wrmsr
  mov ecx, 0x174                ; SYSENTER_CS
  mov eax, 0x08
  wrmsr
  mov ecx, 0x175                ; SYSENTER_ESP
  mov eax, STACK_TOP
  wrmsr
  mov ecx, 0x176                ; SYSENTER_EIP
  mov eax, landing
  wrmsr
  ; the CPUID the probes see
  mov edi, cpuid_out
  mov esi, leaves
.leaf:
  mov eax, [rsi]
  xor ecx, ecx
  cpuid
  mov [rdi], eax
  mov [rdi + 4], ebx
  mov [rdi + 8], ecx
  mov [rdi + 12], edx
  add rsi, 4
  add rdi, 16
  cmp rsi, leaves_end
  jne .leaf
  mov eax, [first]
  dec eax
  mov [cur], eax
  jmp next

tss_init:                       ; RSP0 and IST1 = IST_TOP, no I/O bitmap
  mov qword [rdi + 4], IST_TOP
  mov qword [rdi + 0x24], IST_TOP
  mov word [rdi + 0x66], 0x68
  ret

leaves: dd 0, 1, 7, 0x80000000, 0x80000001, 0x80000008
leaves_end:

landing:
  int 0xf0

align 16
stubs:
%assign v 0
%rep 256
  push strict dword v
  jmp strict near record
  align 16, db 0xcc
%assign v v + 1
%endrep

record:
  pop rax
  movzx eax, al
  mov ecx, [cur]
  mov [RESULTS + rcx], al
  mov edx, -1
  bt [errmask], eax
  jnc .noerr
  mov edx, [rsp]
.noerr:
  mov [ERRCODES + rcx * 4], edx
  cmp dword [in_next], 0
  jne fatal
next:
  mov dword [in_next], 1
  mov rsp, IST_TOP
  cld
  mov eax, [cur]
  inc eax
  mov [cur], eax
  cmp eax, [nprobes]
  jae finish
  mov esi, PRISTINE
  mov edi, SCRATCH
  mov ecx, 512
  rep movsq
  mov esi, PREFILL
  mov edi, STACK_TOP
  mov ecx, 512
  rep movsq
  mov ax, [pds]
  mov ds, ax
  mov es, ax
  mov fs, ax
  mov gs, ax
  fninit
  ldmxcsr [mxcsr_init]
  mov eax, [cur]
  mov eax, [ADDRS + rax * 4]
  push qword [pss]
  push STACK_TOP
  push qword [pflags]
  push qword [pcs]
  push rax
  mov rax, [regs]
  mov rcx, [regs + 8]
  mov rdx, [regs + 16]
  mov rbx, [regs + 24]
  mov rbp, [regs + 40]
  mov rsi, [regs + 48]
  mov rdi, [regs + 56]
  mov r8, [regs + 64]
  mov r9, [regs + 72]
  mov r10, [regs + 80]
  mov r11, [regs + 88]
  mov r12, [regs + 96]
  mov r13, [regs + 104]
  mov r14, [regs + 112]
  mov r15, [regs + 120]
  mov dword [in_next], 0
  iretq

finish:
  out 0xe1, al
  hlt
  jmp finish

fatal:
  out 0xe2, al
  hlt
  jmp fatal
