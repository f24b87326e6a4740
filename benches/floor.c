/*
 * The C floor: the least work that spawns a program and awaits its exit
 * through a pidfd, with nothing else in the loop. Every aiospawn figure is
 * compared against this one, measured in the same run.
 *
 * Usage: floor true|echo COUNT
 *   true   spawn /bin/true COUNT times, one after the other
 *   echo   spawn "echo hello" with stdout on a pipe and read it to EOF
 * Prints one line: wall microseconds per spawn, parent CPU microseconds
 * per spawn (user + system from getrusage).
 *
 * Each child is created with clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD),
 * execs, and is awaited with poll on the pidfd and waitid(P_PIDFD).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#define STACK_SIZE (64 * 1024)

extern char **environ;

struct child_args {
    char *const *argv;
    int stdout_fd; /* -1: inherit */
};

static int child_main(void *raw)
{
    struct child_args *args = raw;

    if (args->stdout_fd >= 0)
        dup2(args->stdout_fd, 1);
    syscall(SYS_execve, args->argv[0], args->argv, environ);
    syscall(SYS_exit_group, 127);
    return 127;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static double cpu_us(void)
{
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + usage.ru_utime.tv_usec +
           usage.ru_stime.tv_usec;
}

static void spawn_once(char *stack_top, char *const *argv, int capture)
{
    struct child_args args = {argv, -1};
    int pipe_fds[2] = {-1, -1};
    struct pollfd pfd;
    siginfo_t info;
    int pidfd = -1;
    char buffer[4096];

    if (capture) {
        if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
            perror("pipe2");
            exit(1);
        }
        args.stdout_fd = pipe_fds[1];
    }
    if (clone(child_main, stack_top, CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD, &args,
              &pidfd) < 0) {
        perror("clone");
        exit(1);
    }
    if (capture) {
        close(pipe_fds[1]);
        while (read(pipe_fds[0], buffer, sizeof(buffer)) > 0)
            ;
        close(pipe_fds[0]);
    }
    pfd.fd = pidfd;
    pfd.events = POLLIN;
    while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
        ;
    if (syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED, NULL) != 0) {
        perror("waitid");
        exit(1);
    }
    close(pidfd);
}

int main(int argc, char **argv)
{
    static char *const true_argv[] = {"/bin/true", NULL};
    static char *const echo_argv[] = {"/bin/echo", "hello", NULL};
    char *stack;
    int capture, count;
    double wall, cpu;

    if (argc != 3 || (strcmp(argv[1], "true") != 0 && strcmp(argv[1], "echo") != 0)) {
        fprintf(stderr, "usage: %s true|echo COUNT\n", argv[0]);
        return 2;
    }
    capture = strcmp(argv[1], "echo") == 0;
    count = atoi(argv[2]);
    stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                 -1, 0);
    if (stack == MAP_FAILED) {
        perror("mmap");
        return 1;
    }

    wall = now_us();
    cpu = cpu_us();
    for (int i = 0; i < count; i++)
        spawn_once(stack + STACK_SIZE, capture ? echo_argv : true_argv, capture);
    wall = now_us() - wall;
    cpu = cpu_us() - cpu;
    printf("%.3f %.3f\n", wall / count, cpu / count);
    return 0;
}
