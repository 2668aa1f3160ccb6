; A guest that drives the first virtio disk's request queue by hand (tsvmm run --flat
; 0x100000:protected32 --drive file=IMG), as a buggy or hostile driver would: for each case it
; resets the device, sets it up again (virtio 1.2 §3.1.1), makes one request available, notifies,
; and prints what the device did:
;   NAME used=U req=S dev=D
; U is the used ring's index (1: the device completed the request; 0: it did not touch the ring),
; S the request's status byte (0 OK, 1 IOERR, 2 UNSUPP; FF: never written) and D the device
; status register (0F live; 4F or 4B with DEVICE_NEEDS_RESET, 0x40). The test compares the lines
; with what the spec says, then the last case shows the device works again after a reset. It ends
; through the debug-exit port with 0x2a (exit status 0x55).
;
; The image must be 8 sectors with sector n filled with 0xA0 + n (read requests print the first
; byte they read as data=XX).
bits 32
org 0x100000
  jmp start
%include "flat.inc"

; The first disk's window: layout.ts slot VIRTIO_SLOT.DRIVE (2).
MMIO          equ 0xd0000000 + 2 * 0x1000
%include "virtio.inc"

T_IN          equ 0
T_BOGUS       equ 0x99

; The usual three-descriptor request: header (readable), DATA of 512 bytes with DATA_FLAGS, status.
%macro REQUEST 2
  mov dword [HEADER], %1          ; type
  mov dword [HEADER + 4], 0
  mov dword [HEADER + 8], %2      ; sector
  mov dword [HEADER + 12], 0
  DESCR 0, HEADER, 16, F_NEXT, 1
  DESCR 1, DATA, 512, F_NEXT | F_WRITE, 2
  DESCR 2, STATUS, 1, F_WRITE, 0
%endmacro

start:
  call com1_init
  cmp dword [MMIO + REG_MAGIC], 0x74726976
  jne no_disk
  cmp dword [MMIO + REG_DEVICE_ID], 2
  jne no_disk

  ; A well-formed read of sector 3: completed, OK, the sector's bytes.
  call setup
  REQUEST T_IN, 3
  mov esi, s_good
  call submit0

  ; A descriptor whose next is itself (a loop): DEVICE_NEEDS_RESET, the ring untouched.
  call setup
  REQUEST T_IN, 0
  DESCR 1, DATA, 512, F_NEXT | F_WRITE, 1
  mov esi, s_loop
  call submit0

  ; A head index outside the table.
  call setup
  REQUEST T_IN, 0
  mov word [AVAIL + 4], 200
  mov esi, s_head
  call submit

  ; A data buffer outside RAM (in the MMIO hole).
  call setup
  REQUEST T_IN, 0
  DESCR 1, 0xf0000000, 512, F_NEXT | F_WRITE, 2
  mov esi, s_outside
  call submit0

  ; A length that runs past 2^64: address 0xFFFFFFFF_FFFFF000, 8 KiB.
  call setup
  REQUEST T_IN, 0
  DESCR 1, 0xfffff000, 8192, F_NEXT | F_WRITE, 2
  mov dword [DESC + 16 + 4], 0xffffffff
  mov esi, s_wrap
  call submit0

  ; A device-readable buffer after a device-writable one (§2.7.4.2).
  call setup
  REQUEST T_IN, 0
  DESCR 2, STATUS, 1, 0, 0
  mov esi, s_order
  call submit0

  ; A read whose data buffer is device-readable: the request fails with IOERR, the device lives.
  call setup
  REQUEST T_IN, 0
  DESCR 1, DATA, 512, F_NEXT, 2
  mov esi, s_dir
  call submit0

  ; No device-writable byte for the status: nothing can be completed, DEVICE_NEEDS_RESET.
  call setup
  REQUEST T_IN, 0
  DESCR 1, DATA, 512, 0, 0
  mov esi, s_nostatus
  call submit0

  ; A request type the device does not know: UNSUPP.
  call setup
  REQUEST T_BOGUS, 0
  mov esi, s_type
  call submit0

  ; A sector past the capacity (8 sectors): IOERR.
  call setup
  REQUEST T_IN, 8
  mov esi, s_capacity
  call submit0

  ; An indirect descriptor although VIRTIO_F_INDIRECT_DESC was not negotiated.
  call setup
  REQUEST T_IN, 0
  DESCR 0, INDIRECT, 48, F_INDIRECT, 0
  mov esi, s_indirect
  call submit0

  ; The available index moved 100 entries ahead of the device (more than the queue holds).
  call setup
  REQUEST T_IN, 0
  mov word [AVAIL + 4], 0
  mov word [AVAIL + 2], 100
  call notify
  mov esi, s_avail
  call report

  ; A queue size that is not a power of two: refused when the queue is made ready.
  call reset
  mov dword [qsize], 6
  call setup_after_reset
  mov dword [qsize], QSIZE
  mov esi, s_qsize
  call report

  ; A queue made ready before FEATURES_OK: refused (QueueReady reads 0), the notify ignored.
  call reset
  MMIO_W REG_STATUS, S_ACK | S_DRIVER
  call queue_setup
  MMIO_W REG_QUEUE_READY, 1
  REQUEST T_IN, 0
  call publish0
  mov esi, s_early
  call report
  mov esi, s_ready
  call puts
  mov eax, [MMIO + REG_QUEUE_READY]
  call hex8
  mov al, 10
  call putc

  ; After all that, a reset and a good read again: the device recovered.
  call setup
  REQUEST T_IN, 5
  mov esi, s_again
  call submit0

  mov esi, s_done
  call puts
  DEBUG_EXIT_WITH 0x2a

no_disk:
  mov esi, s_nodisk
  call puts
  DEBUG_EXIT_WITH 0x01

; Makes the chain at descriptor 0 available, notifies and reports under the name at ESI.
submit0:
  mov word [AVAIL + 4], 0
submit:
  call publish
  ; fall through

; Prints "NAME used=U req=S dev=D" (and " data=XX" for a completed OK read).
report:
  call puts
  call print_used
  mov esi, s_req
  call puts
  mov al, [STATUS]
  call hex8
  call print_dev
  cmp word [USED + 2], 1
  jne .eol
  cmp byte [STATUS], 0
  jne .eol
  mov esi, s_data
  call puts
  mov al, [DATA]
  call hex8
.eol:
  mov al, 10
  call putc
  ret

s_good:     db "good", 0
s_loop:     db "loop", 0
s_head:     db "head-out-of-table", 0
s_outside:  db "buffer-outside-ram", 0
s_wrap:     db "length-past-2^64", 0
s_order:    db "readable-after-writable", 0
s_dir:      db "read-into-readable", 0
s_nostatus: db "no-status-byte", 0
s_type:     db "unknown-type", 0
s_capacity: db "past-capacity", 0
s_indirect: db "indirect-not-negotiated", 0
s_avail:    db "avail-index-ahead", 0
s_qsize:    db "queue-size-6", 0
s_early:    db "ready-before-features-ok", 0
s_ready:    db "queue-ready=", 0
s_again:    db "good-after-reset", 0
s_req:      db " req=", 0
s_data:     db " data=", 0
s_done:     db "virtio chains done", 10, 0
s_nodisk:   db "no virtio disk in slot 2", 10, 0
