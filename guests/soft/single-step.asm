; RFLAGS.TF single-stepping: #DB (vector 1, at `handler`) is a trap after each instruction that
; began with TF set. 64-bit, at 0x2000 in the standard libnvmm guest; the test puts the IDT at
; 0x1000 and the GDT at 0x1800. The handler reports the pushed RIP and DR6 on port 0xE0 (the
; test compares the RIPs with `expect`); the #BP handler reports 0xB9; the end
; reports 0xD0E and EAX.
bits 64
org 0x2000
  jmp start
  align 8
  dq handler                    ; 0x2008: where the test points vector 1
  dq bp_handler                 ; 0x2010: vector 3
expect:                         ; 0x2018: the RIPs the traps must push, 0-terminated
  dq s2, s3, s3b, s5, s7, s8, s9, 0
start:
  mov eax, 0xffff0ff0            ; DR6 as the handler leaves it
  mov dr6, rax
  pushfq
  or qword [rsp], 0x100
  popfq                         ; sets TF: no trap after this one
s1:
  mov eax, 1
s2:
  add eax, 2
s3:
  mov ecx, ss
s3b:
  mov ss, ecx                   ; shadow: the trap waits for the next instruction
s4:
  nop
s5:
  int3                          ; delivers #BP, which clears TF: no single-step trap
s6:
  pushfq
s7:
  and qword [rsp], ~0x100
s8:
  popfq                         ; clears TF, but began with it set: traps
s9:
  mov ebx, eax
  mov dx, 0xe0
  mov eax, 0xd0e
  out dx, eax
  mov eax, ebx                  ; 3 when the stepped arithmetic ran once
  out dx, eax
  cli
  hlt

handler:                        ; #DB
  push rax
  push rdx
  mov rax, [rsp + 16]           ; the pushed RIP
  mov dx, 0xe0
  out dx, eax
  mov rax, dr6
  out dx, eax
  mov eax, 0xffff0ff0
  mov dr6, rax
  pop rdx
  pop rax
  iretq

bp_handler:                     ; #BP: not single-stepped, returns to s6 with TF set again
  push rdx
  push rax
  mov dx, 0xe0
  mov eax, 0xb9
  out dx, eax
  pop rax
  pop rdx
  iretq
