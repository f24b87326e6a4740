/*
 * The C floor: the least work that spawns a program and awaits its exit
 * through a pidfd, with nothing else in the loop. Every aiospawn figure is
 * compared against this one, measured in the same run.
 *
 * Usage: floor [-m MODE] [-b MIB] [-t SECONDS] MEASURE ARGS...
 *
 * MODE is how each child is created; every mode awaits it the same way
 * (poll or epoll on a pidfd, then waitid(P_PIDFD)):
 *   clone        clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) on a stack of
 *                its own, then execve: the floor (default)
 *   posix_spawn  glibc's posix_spawn, then pidfd_open
 *   vfork        vfork, then pidfd_open
 *   fork         fork, then pidfd_open
 * -b MIB maps and populates MIB mebibytes of private memory first, so the
 * parent is that much bigger while it spawns.
 * -t SECONDS stops starting children once that much time has passed in
 * the measured part, so a slow mode ends in bounded time; the figures are
 * then per child actually spawned (field "n").
 *
 * MEASURE is one of:
 *   true N             spawn /bin/true N times, one after the other
 *   echo N             spawn "/bin/echo hello" N times, stdout on a pipe
 *                      read to EOF
 *   wakeup N HELPER F  spawn "HELPER stamp F" N times; the child writes the
 *                      time just before it exits, this process reads the
 *                      time once waitid returns; median of the differences
 *   concurrent N SECS  start N "/bin/sleep SECS" children as fast as it
 *                      can, reaping those that exit meanwhile, and await
 *                      them all
 *   inflight K N       spawn /bin/true N times keeping K children alive
 *   stdout BYTES HELPER [collect]
 *                      read "HELPER write BYTES" through a pipe to EOF in
 *                      256 KiB reads; with collect, keep it all in memory
 * Prints one JSON object on one line, with the fields compare.py expects.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

#define STACK_SIZE (64 * 1024)
#define READ_CHUNK (256 * 1024)

enum mode { MODE_CLONE, MODE_POSIX_SPAWN, MODE_VFORK, MODE_FORK };

extern char **environ;

static enum mode spawn_mode = MODE_CLONE;
static char *stack_top;
static int64_t time_limit_ns = INT64_MAX;

struct child_args {
    char *const *argv;
    int stdout_fd; /* -1: inherit */
};

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static int child_main(void *raw)
{
    struct child_args *args = raw;

    if (args->stdout_fd >= 0)
        dup2(args->stdout_fd, 1);
    syscall(SYS_execve, args->argv[0], args->argv, environ);
    syscall(SYS_exit_group, 127);
    return 127;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double cpu_us(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + usage.ru_utime.tv_usec +
           usage.ru_stime.tv_usec;
}

static int open_pidfd(pid_t pid)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

    if (pidfd < 0)
        die("pidfd_open");
    return pidfd;
}

/* Start argv with stdout on stdout_fd (-1: inherited); return its pidfd. */
static int spawn(char *const *argv, int stdout_fd)
{
    struct child_args args = {argv, stdout_fd};
    int pidfd = -1;
    pid_t pid;

    switch (spawn_mode) {
    case MODE_CLONE:
        if (clone(child_main, stack_top, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &args,
                  &pidfd) < 0)
            die("clone");
        return pidfd;
    case MODE_POSIX_SPAWN: {
        posix_spawn_file_actions_t actions;
        int error;

        posix_spawn_file_actions_init(&actions);
        if (stdout_fd >= 0)
            posix_spawn_file_actions_adddup2(&actions, stdout_fd, 1);
        error = posix_spawn(&pid, argv[0], &actions, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&actions);
        if (error != 0) {
            errno = error;
            die("posix_spawn");
        }
        return open_pidfd(pid);
    }
    case MODE_VFORK:
        pid = vfork();
        if (pid == 0) {
            child_main(&args);
            _exit(127);
        }
        if (pid < 0)
            die("vfork");
        return open_pidfd(pid);
    case MODE_FORK:
        pid = fork();
        if (pid == 0) {
            child_main(&args);
            _exit(127);
        }
        if (pid < 0)
            die("fork");
        return open_pidfd(pid);
    }
    return -1;
}

static void reap(int pidfd)
{
    siginfo_t info;

    if (syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED, NULL) != 0)
        die("waitid");
    close(pidfd);
}

static void await_exit(int pidfd)
{
    struct pollfd pfd = {.fd = pidfd, .events = POLLIN};

    while (poll(&pfd, 1, -1) < 0)
        if (errno != EINTR)
            die("poll");
    reap(pidfd);
}

static void spawn_and_wait(char *const *argv, int capture)
{
    int pipe_fds[2] = {-1, -1};
    char buffer[4096];
    int pidfd;

    if (capture && pipe2(pipe_fds, O_CLOEXEC) != 0)
        die("pipe2");
    pidfd = spawn(argv, pipe_fds[1]);
    if (capture) {
        close(pipe_fds[1]);
        while (read(pipe_fds[0], buffer, sizeof(buffer)) > 0)
            ;
        close(pipe_fds[0]);
    }
    await_exit(pidfd);
}

static int count_open_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    int count = 0;

    if (dir == NULL)
        return -1;
    while (readdir(dir) != NULL)
        count++;
    closedir(dir);
    return count - 3; /* ".", ".." and the directory's own fd */
}

static int compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void measure_sequential(long count, int capture)
{
    static char *const true_argv[] = {"/bin/true", NULL};
    static char *const echo_argv[] = {"/bin/echo", "hello", NULL};
    char *const *argv = capture ? echo_argv : true_argv;
    int64_t wall;
    double cpu;

    long done = 0;

    spawn_and_wait(argv, capture); /* untimed, like the Python workers */
    wall = now_ns();
    cpu = cpu_us();
    while (done < count && now_ns() - wall < time_limit_ns) {
        spawn_and_wait(argv, capture);
        done++;
    }
    wall = now_ns() - wall;
    cpu = cpu_us() - cpu;
    printf("{\"wall_us\": %.3f, \"cpu_us\": %.3f, \"n\": %ld}\n", wall / 1e3 / done,
           cpu / done, done);
}

static void measure_wakeup(long count, char *helper, char *path)
{
    char *const argv[] = {helper, "stamp", path, NULL};
    int64_t *samples = calloc(count, sizeof(*samples));
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    int64_t start = now_ns();
    long done = 0;

    if (samples == NULL || fd < 0)
        die("wakeup setup");
    spawn_and_wait(argv, 0);
    for (long i = 0; i < count && now_ns() - start < time_limit_ns; i++, done++) {
        int64_t stamp = 0, woken;

        await_exit(spawn(argv, -1));
        woken = now_ns();
        if (pread(fd, &stamp, sizeof(stamp), 0) != (ssize_t)sizeof(stamp))
            die("pread");
        samples[i] = woken - stamp;
    }
    qsort(samples, done, sizeof(*samples), compare_int64);
    printf("{\"latency_us\": %.3f, \"p90_us\": %.3f, \"n\": %ld}\n", samples[done / 2] / 1e3,
           samples[done * 9 / 10] / 1e3, done);
    close(fd);
    free(samples);
}

/*
 * Children awaited together: each pidfd is registered with epoll under a
 * sequence number. A child created by clone without CLONE_FILES keeps a
 * copy of its siblings' pidfds until its exec closes them, and that copy
 * would keep a closed pidfd's registration alive for a moment. So each
 * pidfd leaves epoll before it is closed, and an event is trusted only if
 * its number still belongs to a live child.
 */
struct herd {
    int epfd;
    long alive;
    long size;
    int *pidfds; /* by sequence number; -1 once reaped */
};

static void herd_init(struct herd *herd, long size)
{
    herd->epfd = epoll_create1(EPOLL_CLOEXEC);
    herd->alive = 0;
    herd->size = size;
    herd->pidfds = malloc(size * sizeof(*herd->pidfds));
    if (herd->epfd < 0 || herd->pidfds == NULL)
        die("epoll_create1");
}

static void herd_add(struct herd *herd, long number, int pidfd)
{
    struct epoll_event event = {.events = EPOLLIN, .data.u64 = (uint64_t)number};

    herd->pidfds[number] = pidfd;
    if (epoll_ctl(herd->epfd, EPOLL_CTL_ADD, pidfd, &event) != 0)
        die("epoll_ctl");
    herd->alive++;
}

/* Reap every child whose pidfd epoll reports ready. */
static void herd_reap(struct herd *herd, int timeout_ms)
{
    struct epoll_event events[64];
    int ready;

    do
        ready = epoll_wait(herd->epfd, events, 64, timeout_ms);
    while (ready < 0 && errno == EINTR);
    if (ready < 0)
        die("epoll_wait");
    for (int i = 0; i < ready; i++) {
        long number = (long)events[i].data.u64;
        int pidfd;

        if (number >= herd->size || herd->pidfds[number] < 0)
            continue; /* a stale registration, see above */
        pidfd = herd->pidfds[number];
        herd->pidfds[number] = -1;
        epoll_ctl(herd->epfd, EPOLL_CTL_DEL, pidfd, NULL);
        reap(pidfd);
        herd->alive--;
    }
}

static void herd_free(struct herd *herd)
{
    close(herd->epfd);
    free(herd->pidfds);
}

static void measure_concurrent(long count, char *seconds)
{
    char *const argv[] = {"/bin/sleep", seconds, NULL};
    struct herd herd;
    long peak = 0;
    int base_fds;
    int64_t wall;

    herd_init(&herd, count);
    base_fds = count_open_fds();
    wall = now_ns();
    for (long i = 0; i < count; i++) {
        herd_add(&herd, i, spawn(argv, -1));
        if (herd.alive > peak)
            peak = herd.alive;
        herd_reap(&herd, 0);
    }
    while (herd.alive > 0)
        herd_reap(&herd, -1);
    wall = now_ns() - wall;
    printf("{\"wall_s\": %.6f, \"threads\": 1, \"fds\": %ld}\n", wall / 1e9, base_fds + peak);
    herd_free(&herd);
}

static void measure_inflight(long limit, long count)
{
    static char *const argv[] = {"/bin/true", NULL};
    struct herd herd;
    long started = 0;
    int64_t wall;
    double cpu;

    herd_init(&herd, count);
    spawn_and_wait((char *const *)argv, 0);
    wall = now_ns();
    cpu = cpu_us();
    while (started < count || herd.alive > 0) {
        while (started < count && herd.alive < limit) {
            herd_add(&herd, started, spawn(argv, -1));
            started++;
        }
        herd_reap(&herd, -1);
        if (now_ns() - wall >= time_limit_ns)
            count = started; /* start no more */
    }
    wall = now_ns() - wall;
    cpu = cpu_us() - cpu;
    printf("{\"per_s\": %.3f, \"cpu_us\": %.3f, \"n\": %ld}\n", started / (wall / 1e9),
           cpu / started, started);
    herd_free(&herd);
}

/* With collect, the output is kept in one growing buffer, as a capture
   keeps it; otherwise each read reuses the same buffer. */
static void measure_stdout(char *bytes, char *helper, int collect)
{
    char *const argv[] = {helper, "write", bytes, NULL};
    static char chunk[READ_CHUNK];
    char *kept = NULL;
    size_t capacity = 0;
    int pipe_fds[2];
    long long total = 0;
    ssize_t got;
    int pidfd;
    int64_t wall;

    if (pipe2(pipe_fds, O_CLOEXEC) != 0)
        die("pipe2");
    wall = now_ns();
    pidfd = spawn(argv, pipe_fds[1]);
    close(pipe_fds[1]);
    for (;;) {
        char *target = chunk;

        if (collect) {
            if (capacity - total < READ_CHUNK) {
                capacity = capacity ? capacity * 2 : 4 * READ_CHUNK;
                kept = realloc(kept, capacity);
                if (kept == NULL)
                    die("realloc");
            }
            target = kept + total;
        }
        got = read(pipe_fds[0], target, READ_CHUNK);
        if (got == 0)
            break;
        if (got < 0) {
            if (errno == EINTR)
                continue;
            die("read");
        }
        total += got;
    }
    close(pipe_fds[0]);
    await_exit(pidfd);
    wall = now_ns() - wall;
    printf("{\"mb_s\": %.3f, \"bytes\": %lld}\n", total / 1e6 / (wall / 1e9), total);
    free(kept);
}

static void add_ballast(long mib)
{
    size_t size = (size_t)mib << 20;
    char *memory;

    if (mib <= 0)
        return;
    memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                  -1, 0);
    if (memory == MAP_FAILED)
        die("mmap ballast");
    /* Write every page, in case MAP_POPULATE was not honoured. */
    for (size_t offset = 0; offset < size; offset += 4096)
        memory[offset] = 1;
}

static void raise_fd_limit(void)
{
    struct rlimit limit;

    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
}

static void usage(const char *program)
{
    fprintf(stderr,
            "usage: %s [-m clone|posix_spawn|vfork|fork] [-b MIB] [-t SECONDS] MEASURE ARGS...\n"
            "  true N | echo N | wakeup N HELPER FILE | concurrent N SECONDS |\n"
            "  inflight K N | stdout BYTES HELPER [collect]\n",
            program);
    exit(2);
}

static long positive(const char *text, const char *program)
{
    char *end;
    long value = strtol(text, &end, 10);

    if (*end != '\0' || value < 1)
        usage(program);
    return value;
}

int main(int argc, char **argv)
{
    long ballast = 0;
    char *stack;
    int option;

    while ((option = getopt(argc, argv, "+m:b:t:")) != -1) {
        if (option == 'm') {
            if (strcmp(optarg, "clone") == 0)
                spawn_mode = MODE_CLONE;
            else if (strcmp(optarg, "posix_spawn") == 0)
                spawn_mode = MODE_POSIX_SPAWN;
            else if (strcmp(optarg, "vfork") == 0)
                spawn_mode = MODE_VFORK;
            else if (strcmp(optarg, "fork") == 0)
                spawn_mode = MODE_FORK;
            else
                usage(argv[0]);
        } else if (option == 'b') {
            ballast = positive(optarg, argv[0]);
        } else if (option == 't') {
            time_limit_ns = (int64_t)(atof(optarg) * 1e9);
            if (time_limit_ns <= 0)
                usage(argv[0]);
        } else {
            usage(argv[0]);
        }
    }
    argc -= optind;
    argv += optind;
    if (argc < 2)
        usage(argv[-optind]);

    stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                 -1, 0);
    if (stack == MAP_FAILED)
        die("mmap");
    stack_top = stack + STACK_SIZE;
    raise_fd_limit();
    add_ballast(ballast);

    if (strcmp(argv[0], "true") == 0 && argc == 2)
        measure_sequential(positive(argv[1], "floor"), 0);
    else if (strcmp(argv[0], "echo") == 0 && argc == 2)
        measure_sequential(positive(argv[1], "floor"), 1);
    else if (strcmp(argv[0], "wakeup") == 0 && argc == 4)
        measure_wakeup(positive(argv[1], "floor"), argv[2], argv[3]);
    else if (strcmp(argv[0], "concurrent") == 0 && argc == 3)
        measure_concurrent(positive(argv[1], "floor"), argv[2]);
    else if (strcmp(argv[0], "inflight") == 0 && argc == 3)
        measure_inflight(positive(argv[1], "floor"), positive(argv[2], "floor"));
    else if (strcmp(argv[0], "stdout") == 0 && argc == 3)
        measure_stdout(argv[1], argv[2], 0);
    else if (strcmp(argv[0], "stdout") == 0 && argc == 4 && strcmp(argv[3], "collect") == 0)
        measure_stdout(argv[1], argv[2], 1);
    else
        usage("floor");
    return 0;
}
