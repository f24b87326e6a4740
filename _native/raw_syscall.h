/*
 * System calls that never touch errno.
 *
 * A child created with CLONE_VM shares the parent's memory and, because no
 * CLONE_SETTLS is given, its thread pointer too: errno would be the errno of
 * the parent thread, which keeps running. These wrappers issue the
 * instruction directly and return -errno instead, so the child can call
 * them safely. The parent side uses them too where it needs the kernel's
 * raw interface (clone3, waitid with rusage).
 */
#ifndef AIOSPAWN_RAW_SYSCALL_H
#define AIOSPAWN_RAW_SYSCALL_H

#include <sys/syscall.h>

#if defined(__x86_64__)

static inline long raw_syscall6(long n, long a1, long a2, long a3, long a4,
                                long a5, long a6)
{
    long ret;
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8),
                       "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

#elif defined(__aarch64__)

static inline long raw_syscall6(long n, long a1, long a2, long a3, long a4,
                                long a5, long a6)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a1;
    register long x1 __asm__("x1") = a2;
    register long x2 __asm__("x2") = a3;
    register long x3 __asm__("x3") = a4;
    register long x4 __asm__("x4") = a5;
    register long x5 __asm__("x5") = a6;
    __asm__ volatile("svc #0"
                     : "+r"(x0)
                     : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                     : "memory");
    return x0;
}

#else
#error "aiospawn supports x86_64 and aarch64 only"
#endif

#define raw_syscall0(n) raw_syscall6((n), 0, 0, 0, 0, 0, 0)
#define raw_syscall1(n, a) raw_syscall6((n), (long)(a), 0, 0, 0, 0, 0)
#define raw_syscall2(n, a, b) raw_syscall6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define raw_syscall3(n, a, b, c) \
    raw_syscall6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define raw_syscall4(n, a, b, c, d) \
    raw_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)
#define raw_syscall5(n, a, b, c, d, e) \
    raw_syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), 0)

/* Numbers missing from older kernel headers; equal on x86_64 and aarch64. */
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

/*
 * Create a child with clone3 that starts on args->stack and calls fn(arg),
 * then exits with its return value. Returns the child's pid or -errno in
 * the parent; never returns in the child. Written in assembly because the
 * child resumes on a new stack where the C frame of the caller is invalid.
 */
long aiospawn_clone3_raw(void *clone_args, unsigned long size,
                         int (*fn)(void *), void *arg);

#endif
