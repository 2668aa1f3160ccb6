; A guest that stops for good: interrupts off, then HLT (tsvmm run --flat 0x8000). Only an NMI,
; which nothing on the board sends, could wake it. --timeout ends it; without one, the board
; must say that nothing can.
bits 16
org 0x8000
  cli
  hlt
  jmp $ - 1
