; A flat real-mode guest for the board tests: prints "flat guest" on COM1 and ends the machine
; through the debug-exit port with value 0x21 (exit status 0x43).
bits 16
org 0x8000
  mov dx, 0x3f8
  mov si, msg
.next:
  lodsb
  test al, al
  jz .done
  out dx, al
  jmp .next
.done:
  mov dx, 0x501
  mov al, 0x21
  out dx, al
  hlt
msg db "flat guest", 10, 0
