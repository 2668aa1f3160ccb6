; A multiboot (v1) kernel as a hand-built ELF32 executable (header flag bit 16 clear: the loader
; uses the program header). One PT_LOAD at physical 2 MiB whose p_memsz adds 4 KiB of bss.
bits 32
BASE  equ 0x200000
FLAGS equ (1 << 0) | (1 << 1)  ; page-align modules, memory info
MAGIC equ 0x1BADB002

org BASE
ehdr:
    db 0x7f, "ELF", 1, 1, 1, 0      ; ELFCLASS32, little-endian, version 1, SysV ABI
    times 8 db 0
    dw 2                            ; e_type: ET_EXEC
    dw 3                            ; e_machine: EM_386
    dd 1                            ; e_version
    dd entry                        ; e_entry
    dd phdr - ehdr                  ; e_phoff
    dd 0                            ; e_shoff
    dd 0                            ; e_flags
    dw ehdr_size                    ; e_ehsize
    dw 32                           ; e_phentsize
    dw 1                            ; e_phnum
    dw 0, 0, 0                      ; e_shentsize, e_shnum, e_shstrndx
ehdr_size equ $ - ehdr

phdr:
    dd 1                            ; p_type: PT_LOAD
    dd 0                            ; p_offset
    dd BASE                         ; p_vaddr
    dd BASE                         ; p_paddr
    dd file_end - ehdr              ; p_filesz
    dd file_end - ehdr + 4096       ; p_memsz
    dd 5                            ; p_flags: R X
    dd 0x1000                       ; p_align

align 4
mb_header:
    dd MAGIC
    dd FLAGS
    dd -(MAGIC + FLAGS)

entry:
    cmp eax, 0x2BADB002
    jne .halt
    mov eax, [ebx]
    out 0xe9, al
.halt:
    hlt
    jmp .halt
file_end:
