/*
 * The parent side of spawning: the three backends, slots (the child's stack
 * and error record), the watcher epoll that observes exits and pipes, and
 * the one-time probes of what the kernel and any seccomp filter allow.
 *
 * Backends:
 *   clone3       clone3(CLONE_VM | CLONE_PIDFD | CLONE_CLEAR_SIGHAND) with
 *                exit_signal 0 on the slot's stack. The parent returns as
 *                soon as the child exists and does not wait for its exec:
 *                the slot and request stay alive until the child is reaped
 *                or the kernel clears slot->busy (CLONE_CHILD_CLEARTID fires
 *                at exec and at exit). Needs Linux 5.3; before 5.5, which
 *                added CLONE_CLEAR_SIGHAND, the child resets handlers itself.
 *   clone        clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD): the calling
 *                thread is suspended until the child execs or exits.
 *                Needs Linux 5.2.
 *   posix_spawn  glibc's posix_spawn, then pidfd_open (Linux 5.3). Cannot
 *                run every housekeeping step; those return -ENOTSUP.
 *
 * Exit signal 0 keeps a child that fails before exec out of reach of
 * SIGCHLD handlers, auto-reaping and waitpid(-1) without __WALL, so its
 * error record is always collected here. An exec resets the exit signal to
 * SIGCHLD, though, so a program that exec'd can be auto-reaped (SIGCHLD
 * ignored) or reaped by someone else's waitpid(-1). Its status then comes
 * from the pidfd itself (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux 6.15);
 * on older kernels it is lost, and the event says so.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aiospawn.h"
#include "raw_syscall.h"

extern char **environ;

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#define CLONE_CLEAR_SIGHAND_FLAG 0x100000000ULL
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* struct clone_args up to cgroup: CLONE_ARGS_SIZE_VER2, Linux 5.7. Only
   callers that need set_tid or cgroup pass the full size; the others pass
   CLONE_ARGS_SIZE_VER0 (up to tls), which Linux 5.3 accepts. */
struct clone_args_v2 {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup;
};
#define CLONE_ARGS_SIZE_VER0 64
#define CLONE_INTO_CGROUP_FLAG 0x200000000ULL

/*
 * The child's stack. It runs only the housekeeping script, whose deepest
 * frame is a few hundred bytes; the rest is margin. A guard page sits below.
 */
#define CHILD_STACK_SIZE (64 * 1024)

/* Cleared when clone3 rejects CLONE_CLEAR_SIGHAND (Linux 5.3 and 5.4). */
static int clear_sighand_supported = 1;

/* PIDFD_GET_INFO, from linux/pidfd.h of Linux 6.15, which older headers lack. */
struct pidfd_info_v0 {
    uint64_t mask;
    uint64_t cgroupid;
    uint32_t pid;
    uint32_t tgid;
    uint32_t ppid;
    uint32_t ruid;
    uint32_t rgid;
    uint32_t euid;
    uint32_t egid;
    uint32_t suid;
    uint32_t sgid;
    uint32_t fsuid;
    uint32_t fsgid;
    int32_t exit_code;
};
#define PIDFD_GET_INFO_REQUEST _IOWR(0xFF, 11, struct pidfd_info_v0)
#define PIDFD_INFO_EXIT_FLAG (1ULL << 3)

/* Watcher tokens: bits 33..63 token, bit 32 set for a pidfd, 0..31 the fd. */
#define WATCH_CHILD (1ULL << 32)

static uint64_t watch_data(uint32_t token, int fd, uint64_t kind)
{
    return ((uint64_t)token << 33) | kind | (uint32_t)fd;
}

/* ---- slots ------------------------------------------------------------- */

struct aiospawn_slot *aiospawn_slot_new(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = page + CHILD_STACK_SIZE + page;
    char *mapping = mmap(NULL, size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    struct aiospawn_slot *slot;

    if (mapping == MAP_FAILED)
        return NULL;
    if (mprotect(mapping, page, PROT_NONE) != 0) {
        int saved = errno;
        munmap(mapping, size);
        errno = saved;
        return NULL;
    }

    /* The record lives in the top page; the stack grows down from below it. */
    slot = (struct aiospawn_slot *)(mapping + size - page);
    memset(slot, 0, sizeof(*slot));
    slot->mapping = mapping;
    slot->mapping_size = size;
    slot->stack_top = (char *)slot - 64;
    slot->failed_step = AIOSPAWN_FAILED_NONE;
    slot->status_fd = -1;
    return slot;
}

void aiospawn_slot_free(struct aiospawn_slot *slot)
{
    if (slot == NULL)
        return;
    free(slot->env_copy);
    munmap(slot->mapping, slot->mapping_size);
}

/*
 * Point slot->envp at a private copy of environ's pointer array. A child
 * that does not suspend its parent must not read environ itself: setenv in
 * the still-running parent may reallocate and free that array. glibc never
 * frees the strings, so copying the pointers is enough.
 */
static int copy_environ(struct aiospawn_slot *slot)
{
    size_t count = 0;

    while (environ != NULL && environ[count] != NULL)
        count++;
    if (slot->env_capacity < count + 1) {
        char **grown = realloc(slot->env_copy, (count + 1) * sizeof(char *));
        if (grown == NULL)
            return -ENOMEM;
        slot->env_copy = grown;
        slot->env_capacity = count + 1;
    }
    if (count > 0)
        memcpy(slot->env_copy, environ, count * sizeof(char *));
    slot->env_copy[count] = NULL;
    slot->envp = slot->env_copy;
    return 0;
}

/* Make fd at least 3 so a stdio redirection in the child cannot clobber it. */
static int lift_above_stdio(int fd)
{
    int lifted;

    if (fd > 2)
        return fd;
    lifted = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return lifted < 0 ? -errno : lifted;
}

/* ---- the clone backends ------------------------------------------------ */

static long clone3_child(struct aiospawn_slot *slot, int *pidfd, uint64_t flags)
{
    struct clone_args_v2 args;
    size_t size = CLONE_ARGS_SIZE_VER0;

    memset(&args, 0, sizeof(args));
    if (slot->request->cgroup_fd >= 0) {
        flags |= CLONE_INTO_CGROUP_FLAG;
        args.cgroup = (uint64_t)slot->request->cgroup_fd;
        size = sizeof(args);
    }
    args.flags = flags;
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    args.child_tid = (uint64_t)(uintptr_t)&slot->busy;
    args.exit_signal = 0;
    args.stack = (uint64_t)(uintptr_t)((char *)slot->mapping);
    args.stack_size = (uint64_t)((char *)slot->stack_top - (char *)slot->mapping);
    return aiospawn_clone3_raw(&args, size, aiospawn_child_main, slot);
}

static long spawn_clone3(struct aiospawn_slot *slot, int *pidfd)
{
    uint64_t flags = CLONE_VM | CLONE_PIDFD | CLONE_CHILD_CLEARTID;
    long pid;

    if (clear_sighand_supported) {
        slot->reset_handlers = 0;
        pid = clone3_child(slot, pidfd, flags | CLONE_CLEAR_SIGHAND_FLAG);
        if (pid != -EINVAL)
            return pid;
        clear_sighand_supported = 0;
    }
    slot->reset_handlers = 1;
    return clone3_child(slot, pidfd, flags);
}

static long spawn_clone_vfork(struct aiospawn_slot *slot, int *pidfd)
{
    int flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD; /* exit signal 0 */
    int pid;

    slot->reset_handlers = 1;
    pid = clone(aiospawn_child_main, slot->stack_top, flags, slot, pidfd);
    return pid < 0 ? -errno : pid;
}

/* Kill and reap a child that cannot be handed to the caller. */
static void discard_child(int pidfd)
{
    siginfo_t info;

    raw_syscall4(SYS_pidfd_send_signal, pidfd, SIGKILL, 0, 0);
    while (raw_syscall5(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED | __WALL, 0) ==
           -EINTR)
        ;
    close(pidfd);
}

/* ---- the posix_spawn backend ------------------------------------------- */

static int add_posix_steps(const struct aiospawn_request *request,
                           struct aiospawn_slot *slot,
                           posix_spawn_file_actions_t *actions,
                           posix_spawnattr_t *attributes, sigset_t *defaults,
                           short *flags)
{
    int result = 0;
    int last;

    for (int target = 0; target < 3 && result == 0; target++) {
        int source = request->stdio[target];
        if (source < 0)
            continue;
        if (source < target && request->stdio[source] >= 0 &&
            request->stdio[source] != source) {
            slot->failed_step = AIOSPAWN_FAILED_STDIO;
            return -ENOTSUP;
        }
        /* glibc 2.29+ clears FD_CLOEXEC when source == target. */
        result = posix_spawn_file_actions_adddup2(actions, source, target);
    }

    for (int i = 0; i < request->nsteps && result == 0; i++) {
        const struct aiospawn_step *step = &request->steps[i];

        switch (step->op) {
        case AIOSPAWN_STEP_CLOSE_RANGE:
            last = step->b;
            if (last == -1) {
#if __GLIBC_PREREQ(2, 34)
                result = posix_spawn_file_actions_addclosefrom_np(actions, step->a);
                break;
#else
                last = (int)sysconf(_SC_OPEN_MAX) - 1;
#endif
            }
            for (int fd = step->a; fd <= last && result == 0; fd++)
                result = posix_spawn_file_actions_addclose(actions, fd);
            break;
        case AIOSPAWN_STEP_INHERIT:
            result = posix_spawn_file_actions_adddup2(actions, step->a, step->a);
            break;
        case AIOSPAWN_STEP_CHDIR:
#if __GLIBC_PREREQ(2, 29)
            result = posix_spawn_file_actions_addchdir_np(actions, step->path);
            break;
#else
            slot->failed_step = i;
            return -ENOTSUP;
#endif
        case AIOSPAWN_STEP_SETSID:
            *flags |= POSIX_SPAWN_SETSID;
            break;
        case AIOSPAWN_STEP_SETPGID:
            *flags |= POSIX_SPAWN_SETPGROUP;
            result = posix_spawnattr_setpgroup(attributes, step->a);
            break;
        case AIOSPAWN_STEP_SIGDEFAULT:
            for (int signal = 1; signal <= 64; signal++) {
                if ((uint64_t)step->x & (1ULL << (signal - 1)))
                    sigaddset(defaults, signal);
            }
            break;
        default:
            slot->failed_step = i;
            return -ENOTSUP;
        }
    }
    return -result;
}

/*
 * glibc reserves signals 32 and 33, so sigaddset() rejects them, and its
 * posix_spawn child sets every reserved signal missing from the defaults
 * set to SIG_IGN, which exec keeps. The set is copied bit for bit, so
 * setting the two bits by hand makes the child reset them to SIG_DFL,
 * as they are in a forked child.
 */
static void add_reserved_signals(sigset_t *set)
{
#ifdef __GLIBC__
    unsigned long *words = (unsigned long *)set;
    const unsigned int bits = 8 * sizeof(*words);

    for (unsigned int signal = 32; signal <= 33; signal++)
        words[(signal - 1) / bits] |= 1UL << ((signal - 1) % bits);
#else
    (void)set;
#endif
}

static int spawn_posix(const struct aiospawn_request *request,
                       struct aiospawn_slot *slot, pid_t *pid_out)
{
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    sigset_t defaults, mask;
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    char *const *envp = request->envp != NULL ? request->envp : environ;
    int result, saved = 0;

    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attributes);
    sigemptyset(&defaults);
    sigemptyset(&mask);
    for (int signal = 1; signal <= 64; signal++) {
        if (request->sigmask & (1ULL << (signal - 1)))
            sigaddset(&mask, signal);
    }

    result = add_posix_steps(request, slot, &actions, &attributes, &defaults, &flags);
    add_reserved_signals(&defaults);
    if (result == 0) {
        posix_spawnattr_setsigmask(&attributes, &mask);
        posix_spawnattr_setsigdefault(&attributes, &defaults);
        posix_spawnattr_setflags(&attributes, flags);

        /* Same reporting rule as exec_candidates() in child.c. */
        result = ENOENT;
        for (int i = 0; request->paths[i] != NULL; i++) {
            int attempt = posix_spawn(pid_out, request->paths[i], &actions,
                                      &attributes, request->argv, envp);
            if (attempt == 0) {
                result = 0;
                break;
            }
            if (saved)
                continue;
            result = attempt;
            slot->failed_path = i;
            if (attempt != ENOENT && attempt != ENOTDIR)
                saved = 1;
        }
        if (result != 0) {
            slot->failed_step = AIOSPAWN_FAILED_EXEC;
            slot->failed_errno = result;
            result = AIOSPAWN_CHILD_FAILED;
        }
    }

    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    return result;
}

/* ---- spawning ---------------------------------------------------------- */

static int open_status_pipe(struct aiospawn_slot *slot, int *parent_end)
{
    int fds[2];

    if (pipe2(fds, O_CLOEXEC) != 0)
        return -errno;
    fds[0] = lift_above_stdio(fds[0]);
    fds[1] = lift_above_stdio(fds[1]);
    if (fds[0] < 0 || fds[1] < 0) {
        int error = fds[0] < 0 ? fds[0] : fds[1];
        if (fds[0] >= 0)
            close(fds[0]);
        if (fds[1] >= 0)
            close(fds[1]);
        return error;
    }
    *parent_end = fds[0];
    slot->status_fd = fds[1];
    return 0;
}

int aiospawn_spawn(int backend, const struct aiospawn_request *request,
                   struct aiospawn_slot *slot, int watcher_fd, uint32_t token,
                   struct aiospawn_spawned *out)
{
    sigset_t all, previous;
    int pidfd = -1;
    long pid;
    int result;

    out->pid = -1;
    out->pidfd = -1;
    out->status_fd = -1;
    slot->busy = 1;
    slot->failed_step = AIOSPAWN_FAILED_NONE;
    slot->failed_errno = 0;
    slot->failed_path = -1;
    slot->request = request;
    slot->status_fd = -1;
    slot->envp = request->envp != NULL ? request->envp : environ;

    if (request->cgroup_fd >= 0 && backend != AIOSPAWN_BACKEND_CLONE3)
        return -ENOTSUP;
    if (backend == AIOSPAWN_BACKEND_POSIX_SPAWN) {
        pid_t spawned;

        result = spawn_posix(request, slot, &spawned);
        if (result != 0)
            return result;
        pidfd = (int)raw_syscall2(SYS_pidfd_open, spawned, 0);
        if (pidfd == -ESRCH) {
            /* The child already exited and was reaped by the kernel (SIGCHLD
               ignored) or by someone else: it ran, its status is lost.
               NOTE: if its pid had been reused meanwhile, pidfd_open would
               have opened that other process instead; the window is the
               few microseconds since posix_spawn returned. */
            out->pid = spawned;
            return AIOSPAWN_CHILD_LOST;
        }
        if (pidfd < 0) {
            /* Without a pidfd the child cannot be watched: end it now. */
            kill(spawned, SIGKILL);
            while (waitpid(spawned, NULL, 0) < 0 && errno == EINTR)
                ;
            return pidfd;
        }
        pid = spawned;
    } else {
        if (backend != AIOSPAWN_BACKEND_CLONE3 && backend != AIOSPAWN_BACKEND_CLONE)
            return -EINVAL;
        if (request->envp == NULL && backend == AIOSPAWN_BACKEND_CLONE3) {
            result = copy_environ(slot);
            if (result < 0)
                return result;
        }
        if (request->flags & AIOSPAWN_REQUEST_STATUS_PIPE) {
            result = open_status_pipe(slot, &out->status_fd);
            if (result < 0)
                return result;
        }

        /* Block every signal so no handler of the parent runs in the child. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &previous);
        if (backend == AIOSPAWN_BACKEND_CLONE3)
            pid = spawn_clone3(slot, &pidfd);
        else
            pid = spawn_clone_vfork(slot, &pidfd);
        pthread_sigmask(SIG_SETMASK, &previous, NULL);

        /* The parent's copy of the child's end. slot->status_fd stays as it
           is: a clone3 child may still be reading it. */
        if (slot->status_fd >= 0)
            close(slot->status_fd);
        if (pid < 0) {
            if (out->status_fd >= 0) {
                close(out->status_fd);
                out->status_fd = -1;
            }
            return (int)pid;
        }
    }

    if (watcher_fd >= 0) {
        struct epoll_event event;

        /* One-shot: after its exit event a pidfd never fires again, even if
           a copy made by fork() keeps the registration alive after close. */
        event.events = EPOLLIN | EPOLLONESHOT;
        event.data.u64 = watch_data(token, pidfd, WATCH_CHILD);
        if (epoll_ctl(watcher_fd, EPOLL_CTL_ADD, pidfd, &event) != 0) {
            result = -errno;
            discard_child(pidfd);
            if (out->status_fd >= 0) {
                close(out->status_fd);
                out->status_fd = -1;
            }
            return result;
        }
    }
    out->pid = (int32_t)pid;
    out->pidfd = pidfd;
    return 0;
}

/* ---- observing exits and pipes ----------------------------------------- */

int aiospawn_watcher_new(void)
{
    int fd = epoll_create1(EPOLL_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int aiospawn_watch_fd(int watcher_fd, int fd, uint32_t token, uint32_t events)
{
    struct epoll_event event;

    event.events = events;
    event.data.u64 = watch_data(token, fd, 0);
    return epoll_ctl(watcher_fd, EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : -errno;
}

int aiospawn_unwatch_fd(int watcher_fd, int fd)
{
    struct epoll_event unused;

    return epoll_ctl(watcher_fd, EPOLL_CTL_DEL, fd, &unused) == 0 ? 0 : -errno;
}

/*
 * Collect the exit status of the child behind pidfd, with its rusage.
 * Returns 1 if the child is still running, else 0 with event filled.
 * event->error is ECHILD when someone else collected the status first: it
 * is then unknown.
 */
static int collect_exit(int pidfd, struct aiospawn_event *event)
{
    siginfo_t info;
    struct rusage usage;
    long result;

    memset(&info, 0, sizeof(info));
    memset(&usage, 0, sizeof(usage));
    do {
        result = raw_syscall5(SYS_waitid, P_PIDFD, pidfd, &info,
                              WEXITED | WNOHANG | __WALL, &usage);
    } while (result == -EINTR);
    if (result == 0 && info.si_pid == 0)
        return 1;

    event->is_exit = 1;
    if (result == -ECHILD) {
        /* Reaped by someone else: the pidfd may still know the status. */
        struct pidfd_info_v0 exited;

        memset(&exited, 0, sizeof(exited));
        exited.mask = PIDFD_INFO_EXIT_FLAG;
        if (ioctl(pidfd, PIDFD_GET_INFO_REQUEST, &exited) == 0 &&
            (exited.mask & PIDFD_INFO_EXIT_FLAG)) {
            int status = exited.exit_code;

            event->pid = (int32_t)exited.pid;
            event->returncode = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
            return 0;
        }
    }
    if (result < 0) {
        event->error = (int32_t)-result;
        return 0;
    }
    event->has_rusage = 1;
    event->pid = info.si_pid;
    event->returncode = info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
    event->utime_us = usage.ru_utime.tv_sec * 1000000LL + usage.ru_utime.tv_usec;
    event->stime_us = usage.ru_stime.tv_sec * 1000000LL + usage.ru_stime.tv_usec;
    event->maxrss_kb = usage.ru_maxrss;
    event->minflt = usage.ru_minflt;
    event->majflt = usage.ru_majflt;
    event->nvcsw = usage.ru_nvcsw;
    event->nivcsw = usage.ru_nivcsw;
    return 0;
}

/* collect_exit(), closing the pidfd once the child is reaped. */
int aiospawn_reap(int pidfd, struct aiospawn_event *event)
{
    int result = collect_exit(pidfd, event);

    if (result == 0)
        close(pidfd);
    return result;
}

/*
 * Return up to max_events ready events without blocking. Exited children
 * are reaped here and their pidfds removed from the watcher and closed, so
 * the caller only learns the outcome.
 */
int aiospawn_poll(int watcher_fd, struct aiospawn_event *events, int max_events)
{
    struct epoll_event ready[64];
    int count = 0;
    int n;

    if (max_events > 64)
        max_events = 64;
    do {
        n = epoll_wait(watcher_fd, ready, max_events, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;

    for (int i = 0; i < n; i++) {
        uint64_t data = ready[i].data.u64;
        struct aiospawn_event *event = &events[count];
        int fd = (int)(uint32_t)data;

        memset(event, 0, sizeof(*event));
        event->token = (uint32_t)(data >> 33);
        event->events = ready[i].events;
        if (data & WATCH_CHILD) {
            if (collect_exit(fd, event) != 0) {
                /* Not exited after all: re-arm the one-shot registration. */
                struct epoll_event again;

                again.events = EPOLLIN | EPOLLONESHOT;
                again.data.u64 = data;
                epoll_ctl(watcher_fd, EPOLL_CTL_MOD, fd, &again);
                continue;
            }
            close(fd); /* also removes it from the watcher */
        }
        count++;
    }
    return count;
}

int aiospawn_pidfd_send_signal(int pidfd, int signal)
{
    return (int)raw_syscall4(SYS_pidfd_send_signal, pidfd, signal, 0, 0);
}

/* ---- probes ------------------------------------------------------------ */

static int probe_child_main(void *unused)
{
    (void)unused;
    return 0;
}

static long probe_clone3(struct aiospawn_slot *slot, int *pidfd, uint64_t extra)
{
    struct clone_args_v2 args;

    memset(&args, 0, sizeof(args));
    args.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | extra;
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    args.stack = (uint64_t)(uintptr_t)slot->mapping;
    args.stack_size = (uint64_t)((char *)slot->stack_top - (char *)slot->mapping);
    return aiospawn_clone3_raw(&args, CLONE_ARGS_SIZE_VER0, probe_child_main, NULL);
}

/* Reap a probe child through its pidfd, recording whether waitid(P_PIDFD) works. */
static void reap_probe(struct aiospawn_probe *probe, int pid, int pidfd)
{
    siginfo_t info;
    long result;

    if (probe->pidfd_send_signal == -1) {
        result = raw_syscall4(SYS_pidfd_send_signal, pidfd, 0, 0, 0);
        probe->pidfd_send_signal = (result == -ENOSYS || result == -EPERM) ? (int)-result : 0;
    }
    result = raw_syscall5(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED | __WALL, 0);
    if (probe->waitid_pidfd == -1)
        probe->waitid_pidfd = result < 0 ? (int)-result : 0;
    if (result < 0)
        waitid(P_PID, (id_t)pid, &info, WEXITED | __WALL);
    close(pidfd);
}

/*
 * Fill probe with 0 for each feature that works and its errno otherwise.
 * Each clone probe creates a real child that exits at once, because a
 * seccomp filter may allow some flag combinations and not others.
 */
void aiospawn_probe(struct aiospawn_probe *probe)
{
    struct aiospawn_slot *slot = aiospawn_slot_new();
    sigset_t all, previous;
    int pidfd = -1;
    long pid;

    probe->waitid_pidfd = -1;
    probe->pidfd_send_signal = -1;
    if (slot == NULL) {
        int error = errno;
        probe->clone3 = probe->clone = probe->clear_sighand = error;
        probe->pidfd_open = probe->close_range = error;
        probe->waitid_pidfd = probe->pidfd_send_signal = error;
        return;
    }

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);

    pid = probe_clone3(slot, &pidfd, CLONE_CLEAR_SIGHAND_FLAG);
    probe->clear_sighand = pid < 0 ? (int)-pid : 0;
    if (pid == -EINVAL)
        pid = probe_clone3(slot, &pidfd, 0);
    probe->clone3 = pid < 0 ? (int)-pid : 0;
    if (pid > 0)
        reap_probe(probe, (int)pid, pidfd);

    pid = clone(probe_child_main, slot->stack_top, CLONE_VM | CLONE_VFORK | CLONE_PIDFD,
                NULL, &pidfd);
    probe->clone = pid < 0 ? errno : 0;
    if (pid > 0)
        reap_probe(probe, (int)pid, pidfd);

    pthread_sigmask(SIG_SETMASK, &previous, NULL);

    pidfd = (int)raw_syscall2(SYS_pidfd_open, getpid(), 0);
    probe->pidfd_open = pidfd < 0 ? -pidfd : 0;
    if (pidfd >= 0) {
        if (probe->pidfd_send_signal == -1) {
            long result = raw_syscall4(SYS_pidfd_send_signal, pidfd, 0, 0, 0);
            probe->pidfd_send_signal = result < 0 ? (int)-result : 0;
        }
        if (probe->waitid_pidfd == -1) {
            /* No clone probe reaped a child. waitid(P_PIDFD) on our own
               pidfd fails with ECHILD where it exists (we are not our own
               child) and with EINVAL before Linux 5.4. */
            siginfo_t info;
            long result = raw_syscall5(SYS_waitid, P_PIDFD, pidfd, &info,
                                       WEXITED | WNOHANG, 0);
            probe->waitid_pidfd = (result == 0 || result == -ECHILD) ? 0 : (int)-result;
        }
        close(pidfd);
    }
    if (probe->waitid_pidfd == -1)
        probe->waitid_pidfd = ENOSYS;
    if (probe->pidfd_send_signal == -1)
        probe->pidfd_send_signal = ENOSYS;

    /* An empty range past any real fd: 0 if the call exists. */
    probe->close_range = (int)-raw_syscall3(SYS_close_range, 0x7ffffffe, 0x7fffffff, 0);

    aiospawn_slot_free(slot);
}
