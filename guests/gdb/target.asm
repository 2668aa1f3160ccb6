; The guest the gdb tests debug, loaded flat at 0x100000 and entered in 64-bit mode
; (--flat 0x100000:long64). It adds two numbers, stores the sum in `value`, then spins until
; `go` is not zero (a debugger writes it), prints "done" on COM1 and ends the machine through the
; debug-exit port with `status` (exit code 2 * status + 1).
bits 64
org 0x100000
start:
  mov rax, 0x1111
  mov rbx, 0x2222
sum:
  add rax, rbx
store:
  mov [rel value], rax
spin:
  mov rdx, [rel go]
  test rdx, rdx
  jz spin
done:
  mov dx, 0x3f8
  lea rsi, [rel msg]
.next:
  lodsb
  test al, al
  jz .exit
  out dx, al
  jmp .next
.exit:
  mov dx, 0x501
  mov al, [rel status]
  out dx, al
  hlt
msg: db "done", 10, 0
align 4096 ; data apart from code
value: dq 0
go: dq 0
status: db 0
