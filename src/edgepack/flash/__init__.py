"""Flashable SD-card images of a target (edgepack flash.image / flash.boot / flash.write).

One module per concern: layout (partitions, identifiers, boot files' text),
rootfs (the card's Debian packages configured by hand), initramfs (newc
cpio), disk (FAT, ext4, MBR), publish (.xz, sha256, rpi-imager entry),
steps (the plan), qemu (the boot test), write (a card, with safety checks).
"""
