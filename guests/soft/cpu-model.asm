; The soft CPU's models (test/soft/cpu-model.test.ts), on the 64-bit system guest of
; test/soft/idt-guest.ts (code at 0x2000, data page 0x1000-0x1fff: IDT, GDT at 0x1800, stack
; below 0x2000). The test enters at the addresses in the table below with the registers set:
;   do_cpuid, do_rdmsr, do_wrmsr: the one instruction, then HLT (RDMSR/WRMSR of an MSR the model
;   lacks exits to the VMM instead); do_cr4: MOV CR4, RAX; probes: the instructions of the
;   advertised features, each result a dword OUT to port 0xE9, 0x600D at the end.
; The #GP and #UD handlers OUT 13 or 6 to port 0xE9 and halt.
bits 64
org 0x2000

%define REPORT out 0xe9, eax
SCRATCH equ 0x1c00              ; 16 bytes, 16-aligned, in the data page
FXAREA  equ 0x1900              ; 512 bytes, 16-aligned

        hlt
        align 8
        dq gp                   ; +8
        dq ud                   ; +16
        dq do_cpuid             ; +24
        dq do_rdmsr             ; +32
        dq do_wrmsr             ; +40
        dq do_cr4               ; +48
        dq probes               ; +56
        dq fld_at               ; +64: where FXSAVE's FIP must point

do_cpuid:
        cpuid
        hlt
do_rdmsr:
        rdmsr
        hlt
do_wrmsr:
        wrmsr
        hlt
do_cr4:
        mov cr4, rax
        hlt

gp:     mov eax, 13
        REPORT
        hlt
ud:     mov eax, 6
        REPORT
        hlt

probes:
        clts                    ; the standard guest starts with CR0.TS set
        mov rbx, 0xf0f0f0f000000001
        popcnt rax, rbx         ; POPCNT: 17
        REPORT
        mov ebx, 1
        lzcnt rax, rbx          ; LZCNT (ABM): 63 (BSR, which it is without ABM, gives 0)
        REPORT
        xor ebx, ebx
        lzcnt eax, ebx          ; 32 and CF for a zero source
        setc cl
        shl ecx, 8
        or eax, ecx
        REPORT
        mov ecx, 0xc0000103     ; RDTSCP: ECX = IA32_TSC_AUX
        mov eax, 0x1234
        xor edx, edx
        wrmsr
        xor ecx, ecx
        rdtscp
        mov eax, ecx
        REPORT
        mov qword [SCRATCH], 1  ; CMPXCHG16B (CX16): equal, so RCX:RBX is stored and ZF set
        mov qword [SCRATCH + 8], 2
        mov eax, 1
        mov edx, 2
        mov ebx, 3
        mov ecx, 4
        lock cmpxchg16b [SCRATCH]
        setz al
        movzx eax, al
        REPORT
        mov eax, [SCRATCH]
        REPORT
        mov eax, [SCRATCH + 8]
        REPORT
        mov ah, 0xd5            ; LAHF/SAHF in 64-bit mode (LAHF_LM): SF ZF AF PF CF, bit 1 reads 1
        sahf
        mov ah, 0
        lahf
        movzx eax, ah
        REPORT
        clflush [SCRATCH]       ; cache and prefetch hints: no fault, nothing to do
        clflushopt [SCRATCH]
        clwb [SCRATCH]
        prefetch [SCRATCH]
        prefetchw [SCRATCH]
        wbnoinvd
        mov eax, 0xcac4e
        REPORT
        mov rax, 0x0102030405060708 ; MMXEXT (and SSE's MMX-register forms): PMINUB, PSHUFW
        movq mm0, rax
        mov rax, 0x0807060504030201
        movq mm1, rax
        pminub mm0, mm1
        movq rax, mm0
        REPORT
        shr rax, 32
        REPORT
        pshufw mm2, mm0, 0x1b   ; words reversed
        movq rax, mm2
        REPORT
        emms
        fninit                  ; XSAVEERPTR: FXSAVE stores the last x87 instruction's address
fld_at: fld1
        fxsave [FXAREA]
        mov eax, [FXAREA + 8]
        REPORT
        mov eax, 0x600d
        REPORT
        hlt
