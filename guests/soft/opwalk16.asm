; The real-mode runner of the opcode walk (test/soft/opcode-walk.ts), as opwalk64.asm: each IVT
; entry leads to a stub that records the vector at RESULTS + k (0xF0: the probe completed and
; reached its slot's INT 0xF0); `next` restores the scratch memory, the stack above STACK_TOP,
; segments (DS ES FS GS = DATA_SEG, SS = STACK_SEG), x87/SSE state, FLAGS and registers, and
; jumps to probe k + 1 through the far pointer at ADDRS16 + 4k. After the last, OUT 0xE1; OUT 0xE2
; if `next` itself faulted. Entered in real mode at 0:RUNNER; layout from nasm -D (linear
; addresses, DATA_SEG:0 = 0x10000 and STACK_SEG:0 = 0x20000 hold the scratch and stack areas).
bits 16
org RUNNER

DATA_SEG equ 0x1000
STACK_SEG equ 0x2000

  jmp start
  times 0x10 - ($ - $$) db 0
hdr:
  dd 0x4b57504f                 ; 'OPWK'
nprobes: dd 0                   ; +0x14 (test)
  dd landing                    ; +0x18
cur: dd 0                       ; +0x1c
  dd 0                          ; +0x20 (no GDT)
first: dd 0                     ; +0x24 (test): the probe to start with
  times 0x100 - ($ - $$) db 0
regs: times 16 dq 0             ; +0x100 (test): EAX ECX EDX EBX (ESP) EBP ESI EDI (low dwords)
pflags: dq 2                    ; +0x180 (test)
  dq 0, 0, 0
mxcsr_init: dd 0x1f80           ; +0x1a0
in_next: dd 0                   ; +0x1a4
target: dw 0, 0                 ; the far pointer to the current probe

start:
  xor ax, ax
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov sp, RUNNER
  cld
  xor di, di                    ; the IVT: vector v -> 0:stubs + 8v
  mov ax, stubs
  mov cx, 256
.ivt:
  stosw
  mov word [di], 0
  add di, 2
  add ax, 8
  loop .ivt
  mov eax, [first]
  dec eax
  mov [cur], eax
  jmp next

landing:
  int 0xf0

align 8
stubs:
%assign v 0
%rep 256
  push strict word v
  jmp strict near record
  align 8, db 0xcc
%assign v v + 1
%endrep

record:
  xor ax, ax
  mov ds, ax
  pop ax
  mov bx, RESULTS >> 4
  mov es, bx
  mov bx, [cur]
  mov [es:bx], al
  cmp word [in_next], 0
  jne fatal
next:
  xor ax, ax
  mov ds, ax
  mov word [in_next], 1
  mov ax, STACK_SEG
  mov ss, ax
  mov sp, STACK_TOP - 0x20000
  cld
  mov ebx, [cur]
  inc ebx
  mov [cur], ebx
  cmp ebx, [nprobes]
  jae finish
  shl bx, 2                     ; the far pointer to probe k
  mov ax, ADDRS16 >> 4
  mov es, ax
  mov eax, [es:bx]
  mov [target], eax
  mov ax, DATA_SEG
  mov ds, ax
  mov es, ax
  mov si, PRISTINE - 0x10000
  mov di, SCRATCH - 0x10000
  mov cx, 0x800
  rep movsw
  mov ax, STACK_SEG
  mov es, ax
  mov si, PREFILL - 0x10000
  mov di, STACK_TOP - 0x20000
  mov cx, 0x800
  rep movsw
  mov ax, DATA_SEG
  mov es, ax
  mov fs, ax
  mov gs, ax
  fninit
  ldmxcsr [cs:mxcsr_init]
  push word [cs:pflags]
  popf
  mov eax, [cs:regs]
  mov ecx, [cs:regs + 8]
  mov edx, [cs:regs + 16]
  mov ebx, [cs:regs + 24]
  mov ebp, [cs:regs + 40]
  mov esi, [cs:regs + 48]
  mov edi, [cs:regs + 56]
  mov word [cs:in_next], 0
  jmp far [cs:target]

finish:
  out 0xe1, al
  hlt
  jmp finish

fatal:
  out 0xe2, al
  hlt
  jmp fatal
