; A guest that triple-faults on purpose in the mode the board entered it in (MODE 16, 32 or 64:
; tsvmm run --flat 0x8000:real16, 0x100000:protected32, 0x100000:long64): an IDT with no room for any vector,
; then an exception. Its delivery faults (#GP on the IDT limit), that one's too (#DF), and the
; CPU shuts down.
bits MODE
%if MODE == 16
org 0x8000
%else
org 0x100000
%endif
  cli
  lidt [no_idt]
  ud2
  jmp $
no_idt:
  dw 0
  dq 0
