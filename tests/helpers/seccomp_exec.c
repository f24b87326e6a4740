/*
 * seccomp_exec: run a program under a seccomp filter that fails chosen
 * system calls with a chosen errno, as container runtimes do.
 *
 *     seccomp_exec SYSCALL=ERRNO... -- PROGRAM [ARGUMENTS...]
 *
 * SYSCALL is clone3, clone, pidfd_open, pidfd_send_signal or close_range;
 * ERRNO is ENOSYS or EPERM. The filter first checks the architecture in
 * seccomp_data: a system call made through another ABI (32-bit x86 on an
 * x86_64 kernel) would carry different numbers, so it kills the process.
 * PR_SET_NO_NEW_PRIVS comes first, which seccomp requires of a process
 * without CAP_SYS_ADMIN. The filter survives execve, so PROGRAM and all
 * its children run under it.
 *
 * Built by tests/test_sandbox.py with the system cc; no library needed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp_exec supports x86_64 and aarch64 only"
#endif

/* Numbers from the generic table, equal on x86_64 and aarch64. */
#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
#ifndef __NR_pidfd_send_signal
#define __NR_pidfd_send_signal 424
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif

#define MAX_RULES 8

struct named_number {
    const char *name;
    int number;
};

static const struct named_number SYSCALLS[] = {
    {"clone3", __NR_clone3},
    {"clone", __NR_clone},
    {"pidfd_open", __NR_pidfd_open},
    {"pidfd_send_signal", __NR_pidfd_send_signal},
    {"close_range", __NR_close_range},
};

static const struct named_number ERRNOS[] = {
    {"ENOSYS", ENOSYS},
    {"EPERM", EPERM},
};

static int lookup(const struct named_number *table, size_t count, const char *name)
{
    for (size_t i = 0; i < count; i++) {
        if (strcmp(table[i].name, name) == 0)
            return table[i].number;
    }
    return -1;
}

static int usage(const char *message, const char *value)
{
    fprintf(stderr, "seccomp_exec: %s: %s\n", message, value);
    fprintf(stderr, "usage: seccomp_exec SYSCALL=ERRNO... -- PROGRAM [ARGUMENTS...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct sock_filter program[4 + 2 * MAX_RULES + 1];
    struct sock_fprog filter;
    int length = 0;
    int rules = 0;
    int index = 1;

    /* Kill on a foreign architecture, then load the system call number. */
    program[length++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                                     offsetof(struct seccomp_data, arch));
    program[length++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0);
    program[length++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    program[length++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                                                     offsetof(struct seccomp_data, nr));

    for (; index < argc && strcmp(argv[index], "--") != 0; index++) {
        char rule[64];
        char *separator;
        int number, error;

        if (rules == MAX_RULES)
            return usage("too many rules", argv[index]);
        if (strlen(argv[index]) >= sizeof(rule))
            return usage("rule too long", argv[index]);
        strcpy(rule, argv[index]);
        separator = strchr(rule, '=');
        if (separator == NULL)
            return usage("a rule must be SYSCALL=ERRNO", argv[index]);
        *separator = '\0';
        number = lookup(SYSCALLS, sizeof(SYSCALLS) / sizeof(SYSCALLS[0]), rule);
        error = lookup(ERRNOS, sizeof(ERRNOS) / sizeof(ERRNOS[0]), separator + 1);
        if (number < 0)
            return usage("unknown system call", rule);
        if (error < 0)
            return usage("unknown errno", separator + 1);
        program[length++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, number, 0, 1);
        program[length++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
                                                         SECCOMP_RET_ERRNO | (error & SECCOMP_RET_DATA));
        rules++;
    }
    if (index + 1 >= argc)
        return usage("missing", "-- PROGRAM");
    program[length++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);

    filter.len = (unsigned short)length;
    filter.filter = program;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        perror("seccomp_exec: prctl(PR_SET_NO_NEW_PRIVS)");
        return 1;
    }
    if (syscall(__NR_seccomp, SECCOMP_SET_MODE_FILTER, 0, &filter) != 0) {
        perror("seccomp_exec: seccomp(SECCOMP_SET_MODE_FILTER)");
        return 1;
    }
    execvp(argv[index + 1], &argv[index + 1]);
    perror("seccomp_exec: execvp");
    return 127;
}
