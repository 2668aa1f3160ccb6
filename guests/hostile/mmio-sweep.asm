; A guest that touches every port and then every page of guest-physical space it can address
; where nothing is mapped, forever: first an IN from each of the 65536 ports, then a read of each
; 4 KiB page from 256 MiB to 1 GiB (RAM ends below; the first GiB is identity-mapped), round and
; round, printing '.' on COM1 after each 65536 pages. The host must count and log these in bounded
; memory, and stay responsive (stop, timeouts).
bits 32
org 0x100000
%include "../board/multiboot64.inc"

FIRST equ 0x10000000
LAST  equ 0x40000000

main64:
  xor edx, edx
.ports:
  in al, dx
  inc dx
  jnz .ports                         ; DX wraps to 0 after port 0xffff
sweep:
  mov rbx, FIRST
.page:
  mov eax, [rbx]
  add rbx, 4096
  test ebx, 0x0fffffff               ; 65536 pages done (every 256 MiB)
  jnz .next
  mov al, '.'
  call putc
.next:
  cmp rbx, LAST
  jb .page
  jmp sweep

%include "../board/serial64.inc"

MULTIBOOT64_END
