/*
 * The code that runs in the child, between clone and execve.
 *
 * Rules for everything in this file:
 *   - Raw system calls only (raw_syscall.h). No libc call, no malloc, no
 *     stdio, no locks: the child shares the parent's memory and thread
 *     pointer, and the parent keeps running, so any libc state it touched
 *     would be the parent's. Even errno is off limits.
 *   - No return to the caller: the child either execs or reports
 *     (step, errno) in its slot and exits with status 127.
 *   - Only the child's own stack (the slot's mapping) is written, plus the
 *     slot's error record.
 *
 * The parent keeps the request and the slot alive until the child has
 * exec'd or exited, so reading them here is safe.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "aiospawn.h"
#include "raw_syscall.h"

/* The kernel's struct sigaction, identical on x86_64 and aarch64. */
struct kernel_sigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    uint64_t mask;
};

#define KERNEL_SIGSET_SIZE 8
#define KERNEL_NSIG 64

struct kernel_rlimit64 {
    uint64_t soft;
    uint64_t hard;
};

__attribute__((noreturn)) static void exit_now(int status)
{
    for (;;)
        raw_syscall1(SYS_exit_group, status);
}

__attribute__((noreturn)) static void fail(struct aiospawn_slot *slot, int step,
                                           long negative_errno)
{
    volatile struct aiospawn_slot *record = slot;

    record->failed_errno = (int32_t)-negative_errno;
    record->failed_step = step;
    exit_now(127);
}

static void set_default_action(int signal)
{
    struct kernel_sigaction action = {0};

    action.handler = SIG_DFL;
    raw_syscall4(SYS_rt_sigaction, signal, &action, 0, KERNEL_SIGSET_SIZE);
}

/*
 * Reset every signal that has a handler to SIG_DFL; ignored signals stay
 * ignored, as exec would keep them. Used where CLONE_CLEAR_SIGHAND is not
 * available. The mask inherited from the parent blocks every signal until
 * the end of the script, so no parent handler can run in between.
 */
static void reset_handlers(void)
{
    for (int signal = 1; signal <= KERNEL_NSIG; signal++) {
        struct kernel_sigaction current = {0};

        if (signal == SIGKILL || signal == SIGSTOP)
            continue;
        if (raw_syscall4(SYS_rt_sigaction, signal, 0, &current,
                         KERNEL_SIGSET_SIZE) < 0)
            continue;
        if (current.handler != SIG_DFL && current.handler != SIG_IGN)
            set_default_action(signal);
    }
}

/*
 * Make stdio[i] the child's fd i. A source fd below 3 that an earlier
 * redirection overwrites (stdin=PIPE with stderr=fd 0, say) is first moved
 * above 2, so every target receives what the caller meant.
 */
static long redirect_stdio(const int32_t stdio[3])
{
    int source[3] = {stdio[0], stdio[1], stdio[2]};

    for (int target = 0; target < 3; target++) {
        int fd = source[target];
        if (fd >= 0 && fd < target && source[fd] >= 0 && source[fd] != fd) {
            long moved = raw_syscall3(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 3);
            if (moved < 0)
                return moved;
            source[target] = (int)moved;
        }
    }
    for (int target = 0; target < 3; target++) {
        long result;

        if (source[target] < 0)
            continue;
        if (source[target] == target)
            result = raw_syscall3(SYS_fcntl, target, F_SETFD, 0);
        else
            result = raw_syscall3(SYS_dup3, source[target], target, 0);
        if (result < 0)
            return result;
    }
    return 0;
}

/* close_range for kernels before 5.9: close fds one by one up to RLIMIT_NOFILE. */
static long close_each(unsigned int first, unsigned int last)
{
    struct kernel_rlimit64 limit;
    long result = raw_syscall4(SYS_prlimit64, 0, RLIMIT_NOFILE, 0, &limit);

    if (result < 0)
        return result;
    if (limit.soft > 0 && limit.soft - 1 < last)
        last = (unsigned int)(limit.soft - 1);
    for (unsigned int fd = first; fd <= last && fd >= first; fd++)
        raw_syscall1(SYS_close, fd);
    return 0;
}

static long close_fd_range(unsigned int first, unsigned int last)
{
    long result;

    if (first > last)
        return 0;
    result = raw_syscall3(SYS_close_range, first, last, 0);
    if (result == -ENOSYS)
        result = close_each(first, last);
    return result;
}

/* Close first..last except keep, the status pipe that must stay open until exec. */
static long close_fds_except(unsigned int first, unsigned int last, int keep)
{
    long result;

    if (keep < 0 || (unsigned int)keep < first || (unsigned int)keep > last)
        return close_fd_range(first, last);
    if ((unsigned int)keep > first) {
        result = close_fd_range(first, (unsigned int)keep - 1);
        if (result < 0)
            return result;
    }
    if ((unsigned int)keep < last)
        return close_fd_range((unsigned int)keep + 1, last);
    return 0;
}

static long run_step(const struct aiospawn_step *step, int keep_fd)
{
    struct kernel_rlimit64 limit;
    long result;

    switch (step->op) {
    case AIOSPAWN_STEP_CLOSE_RANGE:
        return close_fds_except((unsigned int)step->a, (unsigned int)step->b,
                                keep_fd);
    case AIOSPAWN_STEP_INHERIT:
        return raw_syscall3(SYS_fcntl, step->a, F_SETFD, 0);
    case AIOSPAWN_STEP_CHDIR:
        return raw_syscall1(SYS_chdir, step->path);
    case AIOSPAWN_STEP_SETSID:
        return raw_syscall0(SYS_setsid);
    case AIOSPAWN_STEP_SETPGID:
        return raw_syscall2(SYS_setpgid, 0, step->a);
    case AIOSPAWN_STEP_UMASK:
        raw_syscall1(SYS_umask, step->a);
        return 0;
    case AIOSPAWN_STEP_SIGDEFAULT:
        for (int signal = 1; signal <= KERNEL_NSIG; signal++) {
            if ((uint64_t)step->x & (1ULL << (signal - 1)))
                set_default_action(signal);
        }
        return 0;
    case AIOSPAWN_STEP_SETRLIMIT:
        limit.soft = (uint64_t)step->x;
        limit.hard = (uint64_t)step->y;
        return raw_syscall4(SYS_prlimit64, 0, step->a, &limit, 0);
    case AIOSPAWN_STEP_PDEATHSIG:
        result = raw_syscall2(SYS_prctl, PR_SET_PDEATHSIG, step->a);
        if (result < 0)
            return result;
        /* The parent may have died before the signal was armed. */
        if (raw_syscall0(SYS_getppid) != step->b) {
            raw_syscall2(SYS_kill, raw_syscall0(SYS_getpid), step->a);
            exit_now(127);
        }
        return 0;
    case AIOSPAWN_STEP_SETGROUPS:
        return raw_syscall2(SYS_setgroups, step->a, step->path);
    case AIOSPAWN_STEP_SETGID: /* x, unlike a, fits every unsigned 32-bit id */
        return raw_syscall3(SYS_setresgid, step->x, step->x, step->x);
    case AIOSPAWN_STEP_SETUID:
        return raw_syscall3(SYS_setresuid, step->x, step->x, step->x);
    case AIOSPAWN_STEP_SETCTTY:
        return raw_syscall3(SYS_ioctl, step->a, TIOCSCTTY, 0);
    default:
        return -EINVAL;
    }
}

/*
 * Try each candidate path. Like CPython's subprocess, report the first error
 * that is not ENOENT or ENOTDIR (a later directory of PATH missing the file
 * must not hide "permission denied" from an earlier one), else the last.
 */
__attribute__((noreturn)) static void exec_candidates(struct aiospawn_slot *slot,
                                                      char *const *envp)
{
    const struct aiospawn_request *request = slot->request;
    volatile struct aiospawn_slot *record = slot;
    long reported = -ENOENT;
    int reported_index = 0;
    int saved = 0;

    for (int i = 0; request->paths[i] != 0; i++) {
        long result = raw_syscall3(SYS_execve, request->paths[i], request->argv,
                                   envp);
        if (saved)
            continue;
        reported = result;
        reported_index = i;
        if (result != -ENOENT && result != -ENOTDIR)
            saved = 1;
    }
    record->failed_path = reported_index;
    fail(slot, AIOSPAWN_FAILED_EXEC, reported);
}

int aiospawn_child_main(void *argument)
{
    struct aiospawn_slot *slot = argument;
    const struct aiospawn_request *request = slot->request;
    uint64_t mask = request->sigmask;
    long result;

    if (slot->reset_handlers)
        reset_handlers();

    result = redirect_stdio(request->stdio);
    if (result < 0)
        fail(slot, AIOSPAWN_FAILED_STDIO, result);

    for (int i = 0; i < request->nsteps; i++) {
        result = run_step(&request->steps[i], slot->status_fd);
        if (result < 0)
            fail(slot, i, result);
    }

    /* Last: unblock what the caller wants open in the new program. */
    raw_syscall4(SYS_rt_sigprocmask, SIG_SETMASK, &mask, 0, KERNEL_SIGSET_SIZE);

    exec_candidates(slot, slot->envp);
}

/*
 * aiospawn_clone3_raw(args, size, fn, arg): see raw_syscall.h. The fn and
 * arg registers survive the system call in both parent and child.
 */
#if defined(__x86_64__)
__asm__(".text\n"
        ".globl aiospawn_clone3_raw\n"
        ".hidden aiospawn_clone3_raw\n"
        ".type aiospawn_clone3_raw,@function\n"
        "aiospawn_clone3_raw:\n"
        "    mov %rdx, %r8\n"  /* fn */
        "    mov %rcx, %r9\n"  /* arg */
        "    mov $435, %eax\n" /* SYS_clone3 */
        "    syscall\n"
        "    test %rax, %rax\n"
        "    jz 1f\n"
        "    ret\n"
        "1:  xor %ebp, %ebp\n" /* child: outermost frame on the new stack */
        "    and $-16, %rsp\n"
        "    mov %r9, %rdi\n"
        "    call *%r8\n"
        "    mov %eax, %edi\n"
        "    mov $231, %eax\n" /* SYS_exit_group */
        "    syscall\n"
        "    hlt\n"
        ".size aiospawn_clone3_raw, .-aiospawn_clone3_raw\n");
#elif defined(__aarch64__)
__asm__(".text\n"
        ".globl aiospawn_clone3_raw\n"
        ".hidden aiospawn_clone3_raw\n"
        ".type aiospawn_clone3_raw,%function\n"
        "aiospawn_clone3_raw:\n"
        "    mov x9, x2\n"   /* fn */
        "    mov x10, x3\n"  /* arg */
        "    mov x8, #435\n" /* SYS_clone3 */
        "    svc #0\n"
        "    cbz x0, 1f\n"
        "    ret\n"
        "1:  mov x29, #0\n" /* child: outermost frame on the new stack */
        "    mov x30, #0\n"
        "    mov x0, x10\n"
        "    blr x9\n"
        "    mov x8, #94\n" /* SYS_exit_group */
        "    svc #0\n"
        "    brk #1000\n"
        ".size aiospawn_clone3_raw, .-aiospawn_clone3_raw\n");
#endif
