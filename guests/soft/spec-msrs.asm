; IA32_ARCH_CAPABILITIES, IA32_SPEC_CTRL, IA32_PRED_CMD, CPUID leaf 7, RDRAND and RDSEED on the soft CPU
; (test/soft/spec-msrs.test.ts). Each result goes out as a dword to port 0xe9; the #GP handler
; reports 13 and the step (r12d) that faulted, then skips the 2-byte RDMSR/WRMSR.
bits 64
org 0x2000

%define REPORT out 0xe9, eax

        jmp start
        align 8
        dq gp                   ; +8: the #GP handler

start:  mov ecx, 0x10a          ; ARCH_CAPABILITIES
        rdmsr
        REPORT
        mov eax, edx
        REPORT
        mov ecx, 0x48           ; SPEC_CTRL := IBRS | SSBD, read back
        mov eax, 5
        xor edx, edx
        wrmsr
        xor eax, eax
        rdmsr
        REPORT
        mov ecx, 0x49           ; PRED_CMD := IBPB
        mov eax, 1
        xor edx, edx
        wrmsr
        mov eax, 7              ; CPUID.7.0:EDX
        xor ecx, ecx
        cpuid
        mov eax, edx
        REPORT
        mov eax, 7              ; CPUID.7.1:EDX (no such subleaf)
        mov ecx, 1
        cpuid
        mov eax, edx
        REPORT
        xor eax, eax            ; the highest basic leaf
        cpuid
        REPORT
        mov eax, 7              ; CPUID.7.0:EBX (RDSEED)
        xor ecx, ecx
        cpuid
        mov eax, ebx
        REPORT
        mov eax, 1              ; CPUID.1:ECX bit 30 (RDRAND)
        cpuid
        mov eax, ecx
        shr eax, 30
        and eax, 1
        REPORT
        xor ebx, ebx            ; RDRAND and RDSEED succeed (CF) with two different values
        rdrand rsi
        setc bl
        rdseed rdi
        setc bh
        xor eax, eax
        cmp rsi, rdi
        setne al
        shl eax, 16
        or eax, ebx
        REPORT
        mov r12d, 1             ; ARCH_CAPABILITIES is read-only
        mov ecx, 0x10a
        wrmsr
        mov r12d, 2             ; PRED_CMD is write-only
        mov ecx, 0x49
        rdmsr
        mov r12d, 3             ; a reserved SPEC_CTRL bit
        mov ecx, 0x48
        mov eax, 8
        xor edx, edx
        wrmsr
        mov eax, 0xd0e
        REPORT
        hlt

gp:     mov eax, 13
        REPORT
        mov eax, r12d
        REPORT
        add rsp, 8              ; the error code
        add qword [rsp], 2      ; past the faulting instruction
        iretq
