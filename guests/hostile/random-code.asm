; The start of a guest that runs random bytes: the test appends CODE_LEN bytes of seeded random
; code right after this stub (at label `code`). MODE 16 (tsvmm run --flat 0x10000:real16), 32
; (--flat 0x100000:protected32) or 64 (--flat 0x100000:long64), with interrupts off.
;   IDT=0  an IDT (real mode: IVT) with no room for any vector: the first exception shuts the
;          CPU down (triple fault)
;   IDT=1  every vector goes to one handler that counts, puts the stack, segments and flags back
;          and goes on somewhere else in the random code; after LIMIT of them the guest ends
;          through the debug-exit port with 0x3c (exit status 0x79)
; The random code may of course undo any of this (overwrite the handler, the IDT, the page
; tables, reprogram devices): however it ends, it ends with a reason.
bits MODE
%if MODE == 16
org 0                                ; CS = 0x1000, IP = 0
STACK_TOP equ 0xfff0                 ; in CS's segment
%else
org 0x100000
STACK_TOP equ 0x70000
IDT_BASE  equ 0x80000
%endif
%if MODE == 64
CODE_SEL  equ 0x08                   ; the board's GDT (cpu-setup.ts): 64-bit code, 32-bit code, data
%else
CODE_SEL  equ 0x10
%endif
DATA_SEL  equ 0x18
LIMIT     equ 1000
STRIDE    equ 97                     ; where the handler goes on: (faults * STRIDE) % CODE_LEN
DEBUG_EXIT equ 0x501

; The state the random code starts from and the handler puts back: flat data segments, the
; stack, flags with only the reserved bit (interrupts off, no single-step, DF clear).
%macro FLAT_STATE 0
%if MODE == 16
  mov ax, cs
  mov sp, STACK_TOP
%else
  mov ax, DATA_SEL
%if MODE == 64
  mov rsp, STACK_TOP
%else
  mov esp, STACK_TOP
%endif
%endif
  mov ds, ax
  mov es, ax
  mov ss, ax
  push 2
  popf
%endmacro

start:
  cli
  FLAT_STATE
%if IDT == 0
  lidt [no_idt]
%elif MODE == 16
  xor ax, ax                         ; the IVT at 0: every vector to 0x1000:handler
  mov es, ax
  xor di, di
  mov cx, 256
.fill:
  mov word [es:di], handler
  mov word [es:di + 2], 0x1000
  add di, 4
  loop .fill
  lidt [ivt]
%elif MODE == 32
  mov edi, IDT_BASE                  ; interrupt gates, DPL 0
  mov ecx, 256
.fill:
  mov eax, handler
  mov [edi], ax
  mov word [edi + 2], CODE_SEL
  mov word [edi + 4], 0x8e00
  shr eax, 16
  mov [edi + 6], ax
  add edi, 8
  loop .fill
  lidt [idt_desc]
%else
  mov edi, IDT_BASE
  mov ecx, 256
.fill:
  mov eax, handler
  mov [rdi], ax
  mov word [rdi + 2], CODE_SEL
  mov word [rdi + 4], 0x8e00
  shr eax, 16
  mov [rdi + 6], ax
  mov qword [rdi + 8], 0             ; offset 63:32 (the handler is below 4 GiB)
  add edi, 16
  loop .fill
  lidt [idt_desc]
%endif
  jmp code

%if IDT == 1
handler:
  FLAT_STATE
  inc word [faults]
  cmp word [faults], LIMIT
  jae .enough
  mov ax, [faults]
  mov cx, STRIDE
  mul cx                             ; DX:AX = faults * STRIDE (DX < STRIDE < CODE_LEN)
  mov cx, CODE_LEN
  div cx                             ; DX = the remainder
%if MODE == 16
  add dx, code
  jmp dx
%elif MODE == 32
  movzx edx, dx
  add edx, code
  jmp edx
%else
  movzx edx, dx
  add edx, code
  jmp rdx
%endif
.enough:
  mov dx, DEBUG_EXIT
  mov al, 0x3c
  out dx, al
  hlt

faults: dw 0
%endif

%if MODE == 16
ivt: dw 256 * 4 - 1
  dd 0
%elif IDT == 1
idt_desc:
  dw 256 * (MODE / 4) - 1
  dq IDT_BASE
%endif
no_idt:
  dw 0
  dq 0

code:
