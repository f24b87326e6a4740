/*
 * Children for the benchmark, built by compare.py. Each mode does its one
 * job with a few system calls, so the child's own start-up and exit cost
 * as little as possible and weigh the same for every method.
 *
 * Usage:
 *   helper stamp PATH
 *       Open PATH, read CLOCK_MONOTONIC, write it at offset 0 as a signed
 *       64-bit count of nanoseconds in native byte order, and exit 0. The
 *       clock is read as late as possible: only the write and the exit
 *       follow it.
 *   helper write BYTES
 *       Write BYTES zero bytes to stdout in 256 KiB writes, then exit 0.
 *   helper tick INTERVAL_US COUNT
 *       Every INTERVAL_US microseconds write the current CLOCK_MONOTONIC
 *       nanoseconds (8 bytes, native order) to stdout. Stops after COUNT
 *       ticks, when a write fails (the reader has gone) or when the parent
 *       dies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WRITE_CHUNK (256 * 1024)

static int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int stamp(const char *path)
{
    int64_t now;
    int fd = open(path, O_WRONLY | O_CLOEXEC);

    if (fd < 0) {
        perror(path);
        return 1;
    }
    now = monotonic_ns();
    if (pwrite(fd, &now, sizeof(now), 0) != (ssize_t)sizeof(now))
        return 1;
    /* No close, no stdio flush: the exit releases the fd. */
    syscall(SYS_exit_group, 0);
    return 0;
}

static int write_zeros(long long total)
{
    static char buffer[WRITE_CHUNK];

    while (total > 0) {
        size_t size = total < WRITE_CHUNK ? (size_t)total : WRITE_CHUNK;
        ssize_t written = write(1, buffer, size);

        if (written < 0) {
            if (errno == EINTR)
                continue;
            perror("write");
            return 1;
        }
        total -= written;
    }
    return 0;
}

static int tick(long interval_us, long count)
{
    struct timespec next;
    int64_t interval_ns = (int64_t)interval_us * 1000;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        return 0;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (long i = 0; i < count; i++) {
        int64_t deadline = (int64_t)next.tv_sec * 1000000000 + next.tv_nsec + interval_ns;
        int64_t now;

        next.tv_sec = deadline / 1000000000;
        next.tv_nsec = deadline % 1000000000;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
            ;
        now = monotonic_ns();
        if (write(1, &now, sizeof(now)) != (ssize_t)sizeof(now))
            return 0; /* the reader closed its end */
        if (now - deadline > interval_ns) {
            /* Woken more than a tick late: restart the grid from now
               instead of writing a burst of overdue ticks. */
            next.tv_sec = now / 1000000000;
            next.tv_nsec = now % 1000000000;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "stamp") == 0)
        return stamp(argv[2]);
    if (argc == 3 && strcmp(argv[1], "write") == 0)
        return write_zeros(atoll(argv[2]));
    if (argc == 4 && strcmp(argv[1], "tick") == 0)
        return tick(atol(argv[2]), atol(argv[3]));
    fprintf(stderr,
            "usage: %s stamp PATH | write BYTES | tick INTERVAL_US COUNT\n", argv[0]);
    return 2;
}
