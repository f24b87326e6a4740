/*
 * The interface between the Python package and the native core.
 *
 * Python builds a spawn request as plain data: candidate executable paths,
 * argv, envp, the stdio sources and a "housekeeping script" of typed steps.
 * The child walks the script with raw system calls and then tries each
 * candidate path with execve. If a step or every execve fails, the child
 * stores (step index, errno) in its slot and exits with status 127.
 *
 * The lines between the cdef markers are read by _native/build_core.py and
 * handed to cffi, so they hold only declarations and integer #defines.
 */
#ifndef AIOSPAWN_H
#define AIOSPAWN_H

#include <stddef.h>
#include <stdint.h>

/* cdef-begin */

/* Backends, in the order automatic selection tries them. */
#define AIOSPAWN_BACKEND_CLONE3 1      /* clone3(CLONE_VM|CLONE_PIDFD), no vfork */
#define AIOSPAWN_BACKEND_CLONE 2       /* clone(CLONE_VM|CLONE_VFORK|CLONE_PIDFD) */
#define AIOSPAWN_BACKEND_POSIX_SPAWN 3 /* posix_spawn + pidfd_open */

/* Housekeeping steps. Field use is listed per step. */
#define AIOSPAWN_STEP_CLOSE_RANGE 1 /* close fds a..b (b = -1: to the last) */
#define AIOSPAWN_STEP_INHERIT 2     /* clear FD_CLOEXEC on fd a */
#define AIOSPAWN_STEP_CHDIR 3       /* chdir(path) */
#define AIOSPAWN_STEP_SETSID 4      /* setsid() */
#define AIOSPAWN_STEP_SETPGID 5     /* setpgid(0, a) */
#define AIOSPAWN_STEP_UMASK 6       /* umask(a) */
#define AIOSPAWN_STEP_SIGDEFAULT 7  /* SIG_DFL for each signal in mask x */
#define AIOSPAWN_STEP_SETRLIMIT 8   /* prlimit64(0, a, {x, y}) */
#define AIOSPAWN_STEP_PDEATHSIG 9   /* PR_SET_PDEATHSIG a, then check getppid() == b */
#define AIOSPAWN_STEP_SETGROUPS 10  /* setgroups(a, (gid_t *)path) */
#define AIOSPAWN_STEP_SETGID 11     /* setresgid(x, x, x) */
#define AIOSPAWN_STEP_SETUID 12     /* setresuid(x, x, x) */
#define AIOSPAWN_STEP_SETCTTY 13    /* ioctl(a, TIOCSCTTY, 0) */

/* Values of aiospawn_slot.failed_step that are not script indexes. */
#define AIOSPAWN_FAILED_NONE -1
#define AIOSPAWN_FAILED_EXEC -2  /* every execve failed: see failed_path */
#define AIOSPAWN_FAILED_STDIO -3 /* redirecting fd 0, 1 or 2 failed */

/* aiospawn_spawn() results besides 0 and -errno. */
#define AIOSPAWN_CHILD_FAILED 1 /* the child failed before exec and is reaped */
#define AIOSPAWN_CHILD_LOST 2   /* posix_spawn: the child ran and was reaped by someone else; out->pid is set */

/* aiospawn_request.flags */
#define AIOSPAWN_REQUEST_STATUS_PIPE 1 /* return a pipe that reaches EOF at exec */

struct aiospawn_step {
    int32_t op;
    int32_t a;
    int32_t b;
    int32_t reserved;
    int64_t x;
    int64_t y;
    const void *path;
};

struct aiospawn_request {
    const char *const *paths; /* candidate executables, NULL-terminated */
    char *const *argv;        /* NULL-terminated */
    char *const *envp;        /* NULL-terminated, or NULL to pass environ */
    const struct aiospawn_step *steps;
    int32_t nsteps;
    int32_t stdio[3]; /* source fd for 0, 1, 2; -1 keeps the parent's */
    uint32_t flags;
    uint64_t sigmask; /* the child's mask at exec: bit n-1 blocks signal n */
    int32_t cgroup_fd; /* cgroup v2 directory to start the child in, or -1 (clone3 only) */
    int32_t reserved;
};

/*
 * Memory shared with the child for its lifetime before exec: its stack and
 * its error record. A slot must stay alive, untouched by another spawn,
 * until the child has been reaped or `busy` has become zero. The parent
 * writes its fields only before the clone: a clone3 child runs
 * concurrently and reads them.
 */
struct aiospawn_slot {
    int32_t busy;         /* zeroed by the kernel at the child's exec or exit */
    int32_t failed_step;  /* AIOSPAWN_FAILED_* or a script index */
    int32_t failed_errno; /* positive errno of the failure */
    int32_t failed_path;  /* index into paths of the reported exec error */
    void *stack_top;
    void *mapping;
    size_t mapping_size;
    const struct aiospawn_request *request;
    char *const *envp;    /* what the child passes to execve */
    char **env_copy;      /* the parent's copy of environ, owned by the slot */
    size_t env_capacity;  /* entries env_copy has room for */
    int32_t status_fd;    /* child's end of the status pipe, or -1 */
    int32_t reset_handlers; /* 1: the child resets handled signals itself */
};

struct aiospawn_spawned {
    int32_t pid;
    int32_t pidfd;
    int32_t status_fd; /* parent's end of the status pipe, or -1 */
};

struct aiospawn_event {
    uint32_t token;
    uint32_t events;    /* EPOLL* bits, for fds watched with aiospawn_watch_fd */
    int32_t is_exit;    /* 1: a child exited and has been reaped */
    int32_t returncode; /* exit status, or -signal when killed */
    int32_t error;      /* errno when the status could not be collected */
    int32_t pid;
    int32_t has_rusage; /* 0 when another waiter reaped the child first */
    int32_t reserved;
    int64_t utime_us;
    int64_t stime_us;
    int64_t maxrss_kb;
    int64_t minflt;
    int64_t majflt;
    int64_t nvcsw;
    int64_t nivcsw;
};

struct aiospawn_probe {
    int32_t clone3;           /* 0 or errno of the probe */
    int32_t clone;            /* 0 or errno */
    int32_t pidfd_open;       /* 0 or errno */
    int32_t waitid_pidfd;     /* 0 or errno */
    int32_t pidfd_send_signal;/* 0 or errno */
    int32_t close_range;      /* 0 or errno */
    int32_t clear_sighand;    /* 0 or errno */
};

struct aiospawn_slot *aiospawn_slot_new(void);
void aiospawn_slot_free(struct aiospawn_slot *slot);

int aiospawn_spawn(int backend, const struct aiospawn_request *request,
                   struct aiospawn_slot *slot, int watcher_fd, uint32_t token,
                   struct aiospawn_spawned *out);

int aiospawn_watcher_new(void);
int aiospawn_watch_fd(int watcher_fd, int fd, uint32_t token, uint32_t events);
int aiospawn_unwatch_fd(int watcher_fd, int fd);
int aiospawn_poll(int watcher_fd, struct aiospawn_event *events, int max_events);
int aiospawn_reap(int pidfd, struct aiospawn_event *event);

int aiospawn_pidfd_send_signal(int pidfd, int signal);
void aiospawn_probe(struct aiospawn_probe *probe);

/* cdef-end */

/* Internal to the core: the child entry point (child.c). */
int aiospawn_child_main(void *slot);

#endif
