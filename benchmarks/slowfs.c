/* An LD_PRELOAD shim that makes one directory tree behave like a slow shared
 * filesystem: every stat and open of a path under $SLOWFS_PREFIX (or relative to a
 * directory opened there) first sleeps $SLOWFS_DELAY_US microseconds, as an NFS
 * client waits for a round trip to its server.  Only those calls wait: Python and
 * molexp's own modules load at local speed.  Built and used by benchmarks/run.py:
 *
 *     gcc -O2 -shared -fPIC -o slowfs.so slowfs.c -ldl
 *     SLOWFS_PREFIX=/ws SLOWFS_DELAY_US=200 LD_PRELOAD=./slowfs.so molexp -w /ws ls
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD 65536
static char slow_fd[MAX_FD];
static const char *prefix;
static size_t prefix_len;
static long delay_ns = -1;

static void setup(void) {
    if (delay_ns >= 0) return;
    const char *p = getenv("SLOWFS_PREFIX");
    const char *d = getenv("SLOWFS_DELAY_US");
    prefix = p && *p ? p : NULL;
    prefix_len = prefix ? strlen(prefix) : 0;
    delay_ns = d ? atol(d) * 1000L : 200000L;
}

static int is_slow(int dirfd, const char *path) {
    setup();
    if (!prefix || !path) return 0;
    if (path[0] == '/') return strncmp(path, prefix, prefix_len) == 0;
    return dirfd >= 0 && dirfd < MAX_FD && slow_fd[dirfd];
}

static void wait_if(int slow) {
    if (slow && delay_ns > 0) {
        struct timespec ts = {delay_ns / 1000000000L, delay_ns % 1000000000L};
        nanosleep(&ts, NULL);
    }
}

static int mark(int fd, int slow) {
    if (fd >= 0 && fd < MAX_FD) slow_fd[fd] = (char)slow;
    return fd;
}

#define REAL(name) static __typeof__(name) *real_##name; \
    if (!real_##name) real_##name = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

int stat(const char *path, struct stat *buf) {
    REAL(stat); wait_if(is_slow(-1, path)); return real_stat(path, buf);
}
int lstat(const char *path, struct stat *buf) {
    REAL(lstat); wait_if(is_slow(-1, path)); return real_lstat(path, buf);
}
int fstatat(int dirfd, const char *path, struct stat *buf, int flags) {
    REAL(fstatat); wait_if(is_slow(dirfd, path)); return real_fstatat(dirfd, path, buf, flags);
}
int fstatat64(int dirfd, const char *path, struct stat64 *buf, int flags) {
    REAL(fstatat64); wait_if(is_slow(dirfd, path)); return real_fstatat64(dirfd, path, buf, flags);
}
int statx(int dirfd, const char *path, int flags, unsigned int mask, struct statx *buf) {
    REAL(statx); wait_if(is_slow(dirfd, path)); return real_statx(dirfd, path, flags, mask, buf);
}
int open(const char *path, int flags, ...) {
    REAL(open); va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, mode_t); va_end(ap);
    int slow = is_slow(-1, path); wait_if(slow); return mark(real_open(path, flags, mode), slow);
}
int open64(const char *path, int flags, ...) {
    REAL(open64); va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, mode_t); va_end(ap);
    int slow = is_slow(-1, path); wait_if(slow); return mark(real_open64(path, flags, mode), slow);
}
int openat(int dirfd, const char *path, int flags, ...) {
    REAL(openat); va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, mode_t); va_end(ap);
    int slow = is_slow(dirfd, path); wait_if(slow);
    return mark(real_openat(dirfd, path, flags, mode), slow);
}
int openat64(int dirfd, const char *path, int flags, ...) {
    REAL(openat64); va_list ap; va_start(ap, flags); mode_t mode = va_arg(ap, mode_t); va_end(ap);
    int slow = is_slow(dirfd, path); wait_if(slow);
    return mark(real_openat64(dirfd, path, flags, mode), slow);
}
int close(int fd) {
    REAL(close); mark(fd, 0); return real_close(fd);
}
