; A #PF on an instruction fetch must push the address that could not be fetched (and set CR2 to
; it), not the address of the instruction that jumped there. 64-bit, at 0x2000 in the standard
; libnvmm guest; the test puts the IDT at 0x1000 and the GDT at 0x1800, #PF at `handler`.
bits 64
org 0x2000
  jmp start
  align 8
  dq handler                    ; 0x2008: where the test points vector 14
start:
  mov rax, 0x3000               ; not mapped by the guest's page tables
  jmp rax
handler:
  add rsp, 8                    ; the error code
  mov rax, [rsp]                ; the pushed RIP
  mov dx, 0xe0
  out dx, eax
  mov rax, cr2
  out dx, eax
  cli
  hlt
