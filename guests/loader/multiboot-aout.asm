; A multiboot (v1) kernel in the a.out-kludge layout (header flag bit 16: the header carries the
; load addresses). Linked for 1 MiB; 64 filler bytes come before the header so a loader must
; search for it; 4 KiB of bss follow the image. At entry it checks EAX for the boot loader magic,
; writes the low byte of multiboot_info.flags to port 0xe9 and halts.
bits 32
LOAD_ADDR equ 0x100000
FLAGS     equ (1 << 0) | (1 << 1) | (1 << 16)  ; page-align modules, memory info, address fields
MAGIC     equ 0x1BADB002

org LOAD_ADDR
    times 64 db 0xcc

align 4
mb_header:
    dd MAGIC
    dd FLAGS
    dd -(MAGIC + FLAGS)
    dd mb_header    ; header_addr
    dd LOAD_ADDR    ; load_addr
    dd load_end     ; load_end_addr
    dd bss_end      ; bss_end_addr
    dd entry        ; entry_addr

entry:
    cmp eax, 0x2BADB002
    jne .halt
    mov eax, [ebx]  ; multiboot_info.flags
    out 0xe9, al
.halt:
    hlt
    jmp .halt
    db "tsvmm multiboot a.out test kernel", 0

load_end:
bss_end equ load_end + 4096
