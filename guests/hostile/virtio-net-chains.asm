; A guest that drives the first network card's transmit queue by hand (tsvmm run --flat
; 0x100000:protected32 --nic ...), as a buggy or hostile driver would: for each case it resets
; the device, sets it up again with only the transmit queue (queue 1), makes one chain available,
; notifies, and prints what the device did:
;   NAME used=U dev=D
; U is the used ring's index (1: the device returned the chain; 0: it did not touch the ring) and
; D the device status register (0F live; 4F with DEVICE_NEEDS_RESET, 0x40). Per virtio 1.2
; §5.1.6.2 and docs in src/devices/virtio/virtio-net.ts: a chain that breaks the ring's rules
; (a device-writable buffer, a loop, memory that is not RAM) asks for a reset; a bad frame in a
; good chain (too short, an offload that was not negotiated, longer than the largest frame) is
; dropped and counted, and the chain returned. The test reads the counters from the machine's
; end. It ends through the debug-exit port with 0x2a (exit status 0x55).
bits 32
org 0x100000
  jmp start
%include "flat.inc"

; The first network card's window: layout.ts slot VIRTIO_SLOT.NIC (2 + MAX_DRIVES = 18).
MMIO          equ 0xd0000000 + 18 * 0x1000
%include "virtio.inc"

TXQ           equ 1
NET_HDR       equ 12                ; struct virtio_net_hdr with VERSION_1
FRAME         equ 60                ; a minimal Ethernet frame
OVERSIZE      equ 70000             ; more than the largest frame (65550 bytes)

; A transmit chain: the header at HEADER (readable), then LEN bytes of frame at DATA with FLAGS.
%macro TX 2
  DESCR 0, HEADER, NET_HDR, F_NEXT, 1
  DESCR 1, DATA, %1, %2, 0
%endmacro

start:
  call com1_init
  cmp dword [MMIO + REG_MAGIC], 0x74726976
  jne no_nic
  cmp dword [MMIO + REG_DEVICE_ID], 1
  jne no_nic
  mov dword [qsel], TXQ
  ; The frame: broadcast, from a locally administered address, EtherType 0x88B5 (local
  ; experimental: nothing on the host side takes it), zero payload.
  mov dword [DATA], 0xffffffff
  mov dword [DATA + 4], 0x0002ffff
  mov dword [DATA + 8], 0x03020100
  mov word [DATA + 12], 0xb588

  call setup
  TX FRAME, 0
  mov esi, s_good
  call send

  ; A device-writable buffer in a transmit chain.
  call setup
  TX FRAME, F_WRITE
  mov esi, s_writable
  call send

  ; A chain whose second descriptor points back at the first (a loop).
  call setup
  TX FRAME, F_NEXT
  mov esi, s_loop
  call send

  ; A frame buffer in the MMIO hole, not RAM.
  call setup
  TX FRAME, 0
  mov dword [DESC + 16], 0xf0000000
  mov esi, s_outside
  call send

  ; Shorter than an Ethernet header: dropped (txErrors), the chain returned.
  call setup
  TX 10, 0
  mov esi, s_short
  call send

  ; A header asking for a checksum offload (flags NEEDS_CSUM) that was not negotiated: txErrors.
  call setup
  TX FRAME, 0
  mov byte [HEADER], 1
  mov esi, s_csum
  call send
  mov byte [HEADER], 0

  ; A header with gso_type TCPV4, not negotiated: txErrors.
  call setup
  TX FRAME, 0
  mov byte [HEADER + 1], 1
  mov esi, s_gso
  call send
  mov byte [HEADER + 1], 0

  ; A frame longer than any the device carries: dropped (txOversize).
  call setup
  TX OVERSIZE, 0
  mov esi, s_oversize
  call send

  ; After all that, a reset and a good frame again.
  call setup
  TX FRAME, 0
  mov esi, s_again
  call send

  mov esi, s_done
  call puts
  DEBUG_EXIT_WITH 0x2a

no_nic:
  mov esi, s_nonic
  call puts
  DEBUG_EXIT_WITH 0x01

; Publishes the chain at descriptor 0 and prints "NAME used=U dev=D" for the name at ESI.
send:
  call publish0
  call puts
  call print_used
  call print_dev
  mov al, 10
  jmp putc

s_good:     db "good", 0
s_writable: db "writable-buffer", 0
s_loop:     db "loop", 0
s_outside:  db "buffer-outside-ram", 0
s_short:    db "shorter-than-ethernet", 0
s_csum:     db "csum-not-negotiated", 0
s_gso:      db "gso-not-negotiated", 0
s_oversize: db "oversize", 0
s_again:    db "good-after-reset", 0
s_done:     db "virtio-net chains done", 10, 0
s_nonic:    db "no virtio-net card in slot 18", 10, 0
