; The 32-bit runner of the opcode walk (test/soft/opcode-walk.ts), as opwalk64.asm in flat 32-bit
; protected mode, paging off, probes at CPL 0: each IDT gate leads to a stub that records the
; vector at RESULTS + k (0xF0: the probe completed) and the error code at ERRCODES + 4k; `next`
; restores the state and jumps to probe k + 1 (EFLAGS and registers from the header; segments 0x08
; and 0x10). Probes that
; end at CPL 3 (SYSEXIT, SYSRET) reach INT 0xF0 there; its gate alone has DPL 3, and the TSS
; gives the stack for it. Entered in flat 32-bit protected mode at RUNNER; layout from nasm -D.
bits 32
org RUNNER

  jmp start
  times 0x10 - ($ - $$) db 0
hdr:
  dd 0x4b57504f                 ; 'OPWK'
nprobes: dd 0                   ; +0x14 (test)
  dd landing                    ; +0x18
cur: dd 0                       ; +0x1c
  dd gdt                        ; +0x20
first: dd 0                     ; +0x24 (test): the probe to start with
  times 0x100 - ($ - $$) db 0
regs: times 16 dq 0             ; +0x100 (test): EAX ECX EDX EBX (ESP) EBP ESI EDI (low dwords)
pflags: dq 2                    ; +0x180 (test)
pcs: dq 0x08                    ; +0x188 (CS, SS, DS ES FS GS of the probes: always these)
pss: dq 0x10                    ; +0x190
pds: dq 0x10                    ; +0x198
mxcsr_init: dd 0x1f80           ; +0x1a0
in_next: dd 0                   ; +0x1a4
errmask:                        ; +0x1a8
  dd (1 << 8) | (0x1f << 10) | (1 << 17) | (1 << 21) | (1 << 29) | (1 << 30), 0, 0, 0, 0, 0, 0, 0
target: dd 0

align 8
gdt:
  dq 0
  dq 0x00cf9a000000ffff         ; 0x08 code32 DPL 0
  dq 0x00cf92000000ffff         ; 0x10 data DPL 0
  dq 0x00cffa000000ffff         ; 0x18 code32 DPL 3 (SYSEXIT, SYSRET)
  dq 0x00cff2000000ffff         ; 0x20 data DPL 3
  dw 0x67, TSS1 & 0xffff        ; 0x28 the runner's TSS (32-bit, available)
  db (TSS1 >> 16) & 0xff, 0x89, 0, 0
  dw 0x67, TSS2 & 0xffff        ; 0x30 a second one, for LTR probes
  db (TSS2 >> 16) & 0xff, 0x89, 0, 0
gdt_end:
gdtr: dw gdt_end - gdt - 1
  dd gdt
idtr: dw 256 * 8 - 1
  dd IDT

start:
  lgdt [gdtr]
  jmp 0x08:.reload
.reload:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov esp, IST_TOP
  mov edi, TSS1
  call tss_init
  mov edi, TSS2
  call tss_init
  mov ax, 0x28
  ltr ax
  mov edi, IDT
  mov eax, stubs
  xor ecx, ecx
.idt:
  mov [edi], ax
  mov word [edi + 2], 0x08
  mov byte [edi + 4], 0
  mov byte [edi + 5], 0x8e
  cmp ecx, 0xf0
  jne .dpl0
  mov byte [edi + 5], 0xee
.dpl0:
  mov edx, eax
  shr edx, 16
  mov [edi + 6], dx
  add eax, 16
  add edi, 8
  inc ecx
  cmp ecx, 256
  jne .idt
  lidt [idtr]
  mov eax, 0x600                ; OSFXSR OSXMMEXCPT
  mov cr4, eax
  mov eax, 0x23                 ; NE MP PE
  mov cr0, eax
  mov ecx, 0xc0000080           ; EFER.SCE: SYSCALL/SYSRET in legacy mode (AMD)
  rdmsr
  or eax, 1
  wrmsr
  mov ecx, 0xc0000081           ; STAR
  mov eax, landing
  mov edx, 0x00180008
  wrmsr
  mov ecx, 0x174                ; SYSENTER_CS
  mov eax, 0x08
  xor edx, edx
  wrmsr
  mov ecx, 0x175                ; SYSENTER_ESP
  mov eax, STACK_TOP
  wrmsr
  mov ecx, 0x176                ; SYSENTER_EIP
  mov eax, landing
  wrmsr
  mov eax, [first]
  dec eax
  mov [cur], eax
  jmp next

tss_init:                       ; SS0:ESP0 = 0x10:IST_TOP, no I/O bitmap
  mov dword [edi + 4], IST_TOP
  mov dword [edi + 8], 0x10
  mov word [edi + 0x66], 0x68
  ret

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
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  pop eax
  movzx eax, al
  mov ecx, [cur]
  mov [RESULTS + ecx], al
  mov edx, -1
  bt [errmask], eax
  jnc .noerr
  mov edx, [esp]
.noerr:
  mov [ERRCODES + ecx * 4], edx
  cmp dword [in_next], 0
  jne fatal
next:
  mov ax, 0x10
  mov ds, ax
  mov es, ax
  mov fs, ax
  mov gs, ax
  mov ss, ax
  mov esp, IST_TOP
  mov dword [in_next], 1
  cld
  mov eax, [cur]
  inc eax
  mov [cur], eax
  cmp eax, [nprobes]
  jae finish
  mov esi, PRISTINE
  mov edi, SCRATCH
  mov ecx, 1024
  rep movsd
  mov esi, PREFILL
  mov edi, STACK_TOP
  mov ecx, 1024
  rep movsd
  fninit
  ldmxcsr [mxcsr_init]
  mov eax, [cur]
  mov eax, [ADDRS + eax * 4]
  mov [target], eax
  push dword [pflags]
  popfd
  mov esp, STACK_TOP
  mov eax, [regs]
  mov ecx, [regs + 8]
  mov edx, [regs + 16]
  mov ebx, [regs + 24]
  mov ebp, [regs + 40]
  mov esi, [regs + 48]
  mov edi, [regs + 56]
  mov dword [in_next], 0
  jmp near [target]

finish:
  out 0xe1, al
  hlt
  jmp finish

fatal:
  out 0xe2, al
  hlt
  jmp fatal
