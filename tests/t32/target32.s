# SPDX-License-Identifier: LGPL-2.1-or-later
# The 32-bit x86 target of tests/test-compat32.c, a process whose address
# space ends near 4 GiB (what CRIU dumps besides 64-bit ones): it maps four
# pages and writes pages 0, 1 and 3; it writes the page at 0xffffc000, just
# below its top (0xffffe000), mapping it unless its stack is there (so that
# a read through its highest VMA runs into the top); it writes the four
# pages' address to stdout (4 bytes, little endian) and waits in pause()
# until killed. No libc: it builds with `as --32` and `ld -m elf_i386`.
	.text
	.globl	_start
_start:
	movl	$192, %eax		# mmap2(NULL, 16 KiB, RW, PRIVATE | ANONYMOUS, -1, 0)
	xorl	%ebx, %ebx
	movl	$16384, %ecx
	movl	$3, %edx
	movl	$0x22, %esi
	movl	$-1, %edi
	xorl	%ebp, %ebp
	int	$0x80
	cmpl	$-4096, %eax
	ja	fail
	movl	%eax, addr
	movb	$1, (%eax)
	movb	$1, 4096(%eax)
	movb	$1, 12288(%eax)
	movl	$192, %eax		# mmap2(0xffffc000, 4 KiB, RW, PRIVATE | ANONYMOUS |
	movl	$0xffffc000, %ebx	#       FIXED_NOREPLACE, -1, 0)
	movl	$4096, %ecx
	movl	$3, %edx
	movl	$0x100022, %esi
	movl	$-1, %edi
	xorl	%ebp, %ebp
	int	$0x80
	cmpl	$0xffffc000, %eax	# else EEXIST: the stack is there, and written
	jne	report
	movb	$1, (%eax)
report:
	movl	$4, %eax		# write(1, &addr, 4)
	movl	$1, %ebx
	movl	$addr, %ecx
	movl	$4, %edx
	int	$0x80
	cmpl	$4, %eax
	jne	fail
wait:
	movl	$29, %eax		# pause()
	int	$0x80
	jmp	wait
fail:
	movl	$1, %eax		# exit(1)
	movl	$1, %ebx
	int	$0x80

	.bss
	.balign	4
addr:	.long	0

	.section .note.GNU-stack, "", @progbits
