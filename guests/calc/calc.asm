; calc: a tiny guest that reads arithmetic expressions from COM1 and prints their values.
; In the spirit of calc-vm, the first VM of NVMM's "From Zero to NVMM". Real mode, loaded at
; 0000:1000. Integers are 32-bit signed: + - * / % and parentheses, with unary minus.
; Input waits with `sti; hlt`: the UART's receive interrupt (IRQ 4, vector 0x0C in the PC's
; default real-mode PIC mapping) wakes it. 'quit' or Ctrl-D resets the machine through the i8042.
bits 16
org 0x1000

COM1      equ 0x3f8
UART_IER  equ COM1 + 1
UART_IIR  equ COM1 + 2
UART_LCR  equ COM1 + 3
UART_MCR  equ COM1 + 4
UART_LSR  equ COM1 + 5
LSR_DR    equ 0x01           ; receive data ready
LSR_THRE  equ 0x20           ; transmit holding register empty
IRQ4_VEC  equ 0x0c
KBC_CMD   equ 0x64
KBC_RESET equ 0xfe           ; i8042: pulse the CPU reset line
LINE_MAX  equ 120

start:
  cli
  xor ax, ax
  mov ds, ax
  mov es, ax
  mov ss, ax
  mov sp, 0x7000
  mov word [IRQ4_VEC * 4], irq4
  mov word [IRQ4_VEC * 4 + 2], 0
  mov dx, UART_LCR
  mov al, 0x80               ; DLAB: divisor latch
  out dx, al
  mov dx, COM1
  mov al, 1                  ; 115200 baud
  out dx, al
  inc dx
  xor al, al
  out dx, al
  mov dx, UART_LCR
  mov al, 0x03               ; 8N1
  out dx, al
  mov dx, UART_IIR
  mov al, 0x07               ; enable and clear FIFOs, interrupt at 1 byte
  out dx, al
  mov dx, UART_MCR
  mov al, 0x0b               ; DTR, RTS, OUT2 (OUT2 gates the IRQ on a PC)
  out dx, al
  mov dx, UART_IER
  mov al, 0x01               ; interrupt on received data
  out dx, al
  mov si, banner
  call puts

prompt:
  mov si, prompt_str
  call puts
  mov di, line
.read:
  call getc
  cmp al, 4                  ; Ctrl-D
  je quit
  cmp al, 13
  je .enter
  cmp al, 10
  je .enter
  cmp al, 8
  je .backspace
  cmp al, 127
  je .backspace
  cmp al, ' '
  jb .read                   ; other control characters are ignored
  cmp di, line + LINE_MAX
  jae .read
  stosb
  call putc
  jmp .read
.backspace:
  cmp di, line
  je .read
  dec di
  mov si, erase
  call puts
  jmp .read
.enter:
  mov byte [di], 0
  mov si, newline
  call puts
  mov si, line
  call skip_ws
  cmp byte [si], 0
  je prompt
  mov di, quit_word
  call match_word
  je quit
  call expr
  jc .error
  call skip_ws
  cmp byte [si], 0
  jne .syntax
  call print_int
  mov si, newline
  call puts
  jmp prompt
.syntax:
  mov byte [err], ERR_SYNTAX
.error:
  movzx bx, byte [err]
  shl bx, 1
  mov si, [errors + bx]
  call puts
  jmp prompt

quit:
  mov si, bye
  call puts
  mov al, KBC_RESET
  out KBC_CMD, al
  cli
  hlt
  jmp quit

; ---- expression evaluator: SI = cursor, result in EAX; on failure CF=1 and [err] says why ----
ERR_SYNTAX   equ 0
ERR_DIVZERO  equ 1
ERR_OVERFLOW equ 2

; expr := term (('+' | '-') term)*
expr:
  call term
  jc .done
.loop:
  call skip_ws
  mov cl, [si]
  cmp cl, '+'
  je .op
  cmp cl, '-'
  jne .ok
.op:
  inc si
  push eax
  push cx
  call term
  pop cx
  mov ebx, eax               ; right operand
  pop eax                    ; left operand (MOV and POP keep CF)
  jc .done
  cmp cl, '+'
  jne .sub
  add eax, ebx
  jo overflow
  jmp .loop
.sub:
  sub eax, ebx
  jo overflow
  jmp .loop
.ok:
  clc
.done:
  ret

; term := factor (('*' | '/' | '%') factor)*
term:
  call factor
  jc .done
.loop:
  call skip_ws
  mov cl, [si]
  cmp cl, '*'
  je .op
  cmp cl, '/'
  je .op
  cmp cl, '%'
  jne .ok
.op:
  inc si
  push eax
  push cx
  call factor
  pop cx
  mov ebx, eax               ; right operand
  pop eax                    ; left operand (MOV and POP keep CF)
  jc .done
  cmp cl, '*'
  jne .divide
  imul eax, ebx
  jo overflow
  jmp .loop
.divide:
  test ebx, ebx
  jz .divzero
  cmp ebx, -1                ; INT_MIN / -1 does not fit
  jne .div_ok
  cmp eax, 0x80000000
  je overflow
.div_ok:
  cdq
  idiv ebx
  cmp cl, '%'
  jne .loop
  mov eax, edx
  jmp .loop
.divzero:
  mov byte [err], ERR_DIVZERO
  stc
  ret
.ok:
  clc
.done:
  ret

; factor := '-' factor | '(' expr ')' | number
factor:
  call skip_ws
  mov cl, [si]
  cmp cl, '-'
  jne .paren
  inc si
  call factor
  jc .done
  neg eax
  jo overflow
  clc                        ; NEG sets CF for any non-zero operand
  ret
.paren:
  cmp cl, '('
  jne .number
  inc si
  call expr
  jc .done
  call skip_ws
  cmp byte [si], ')'
  jne syntax_error
  inc si
  clc
  ret
.number:
  sub cl, '0'
  cmp cl, 9
  ja syntax_error
  xor eax, eax
.digit:
  movzx ecx, byte [si]
  sub cl, '0'
  cmp cl, 9
  ja .end
  imul eax, eax, 10
  jo overflow
  add eax, ecx
  jo overflow
  inc si
  jmp .digit
.end:
  clc
.done:
  ret

syntax_error:
  mov byte [err], ERR_SYNTAX
  stc
  ret

overflow:
  mov byte [err], ERR_OVERFLOW
  stc
  ret

skip_ws:
  cmp byte [si], ' '
  jne .done
  inc si
  jmp skip_ws
.done:
  ret

; ZF=1 when the word at DI (zero-terminated) is the rest of the line at SI, blanks aside.
match_word:
  push si
.next:
  mov al, [di]
  test al, al
  jz .end
  cmp al, [si]
  jne .no
  inc si
  inc di
  jmp .next
.end:
  call skip_ws
  cmp byte [si], 0
.no:
  pop si
  ret

; ---- output ----
print_int:
  test eax, eax
  jns .positive
  push eax
  mov al, '-'
  call putc
  pop eax
  neg eax                    ; INT_MIN stays 0x80000000: printed unsigned below, which is right
.positive:
  mov ecx, 10
  xor bx, bx
.divide:
  xor edx, edx
  div ecx
  push dx
  inc bx
  test eax, eax
  jnz .divide
.print:
  pop ax
  add al, '0'
  call putc
  dec bx
  jnz .print
  ret

puts:
  lodsb
  test al, al
  jz .done
  call putc
  jmp puts
.done:
  ret

putc:
  push dx
  push ax
  mov dx, UART_LSR
.wait:
  in al, dx
  test al, LSR_THRE
  jz .wait
  pop ax
  mov dx, COM1
  out dx, al
  pop dx
  ret

; Waits for a byte from the UART: halts with interrupts on until the receive interrupt.
getc:
  mov dx, UART_LSR
  in al, dx
  test al, LSR_DR
  jnz .ready
  sti                        ; STI's one-instruction shadow makes sti;hlt atomic
  hlt
  cli
  jmp getc
.ready:
  mov dx, COM1
  in al, dx
  ret

irq4:                        ; the data is read by getc; the handler only ends the halt
  iret

banner     db "tsvmm calc: integer expressions with + - * / % ( ). 'quit' or Ctrl-D ends.", 13, 10, 0
prompt_str db "calc> ", 0
newline    db 13, 10, 0
erase      db 8, ' ', 8, 0
quit_word  db "quit", 0
bye        db "bye", 13, 10, 0
err_syntax   db "error: syntax", 13, 10, 0
err_divzero  db "error: division by zero", 13, 10, 0
err_overflow db "error: overflow", 13, 10, 0
errors     dw err_syntax, err_divzero, err_overflow
err        db 0
line       times LINE_MAX + 1 db 0
