; DragonFly h_misc "TPR": write CR8, then end with RDMSR. The marker is the RIP expected at the
; TPR-changed exit (the CR8 write has retired).
%include "macros.inc"
bits 64

  dd 1
  CASE_ENTRY_MARK 1, tpr_next_rip

CASE_BEGIN 1
  mov rax, strict dword 3       ; 48 C7 C0 imm32, as GNU as encodes movq $3,%rax
  mov cr8, rax
tpr_next_rip:
  rdmsr
CASE_END 1
