/*
 * hostplane-nsinit: PID 1 of a job's or sandbox's PID namespace.
 *
 *   hostplane-nsinit [--cgroup DIR] [--lo] [--private-tmp BYTES] [--status-fd N]
 *                    -- COMMAND [ARGS...]
 *
 * Why it exists: the kernel drops signals sent to a namespace's PID 1 unless PID 1 has a handler
 * for them, so a user command running as PID 1 would never see the SIGTERM of a stop; and the job
 * must be in its cgroup before the user's command runs, not moved there afterwards.
 *
 * --private-tmp: a fresh tmpfs of at most BYTES (nodev, nosuid, mode 1777) on each of /tmp,
 * /var/tmp and /dev/shm, so that sandboxes of different users share no scratch space with each
 * other or the host, and nothing written there outlives the namespace. Its pages are charged to
 * whoever writes them, i.e. to the job's cgroup.
 *
 * Exit status: the command's code, or 128+signal when a signal ended it; 127 when COMMAND could
 * not be executed; 125 when the init itself failed (usage, cgroup, loopback, private tmp).
 * Status fd: "ready" once signals sent to the init are no longer dropped (a caller signals only
 * after it), then one line, "exited N", "signaled N" or "failed <strerror>".
 *
 * File descriptors: the init keeps only 0-2 and the status fd, the command gets only 0-2. Whatever
 * else the caller held (a daemon's PTY masters are not close-on-exec) must not reach a sandbox,
 * where it would let one session read or type into another's terminal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXIT_INIT 125
#define EXIT_EXEC 127

static const int forwarded[] = {SIGTERM, SIGINT,  SIGHUP,  SIGQUIT,
                                SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT};
#define NFORWARDED (sizeof(forwarded) / sizeof(forwarded[0]))

static int status_fd = -1;

static void die(const char *what, const char *arg) {
  fprintf(stderr, "hostplane-nsinit: %s %s: %s\n", what, arg, strerror(errno));
  exit(EXIT_INIT);
}

static void usage(const char *why) {
  fprintf(stderr,
          "hostplane-nsinit: %s\nusage: hostplane-nsinit [--cgroup DIR] [--lo] "
          "[--private-tmp BYTES] [--status-fd N] -- COMMAND [ARGS...]\n",
          why);
  exit(EXIT_INIT);
}

/* Writes all of buf, retrying on EINTR and short writes; a gone reader is not our problem. */
static void write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    buf += n;
    len -= (size_t)n;
  }
}

static void report(const char *fmt, const char *s, int n) {
  char line[256];
  int len;
  if (status_fd < 0) return;
  len = s != NULL ? snprintf(line, sizeof line, fmt, s) : snprintf(line, sizeof line, fmt, n);
  if (len > 0) write_all(status_fd, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
}

/* Closes [lo, hi]; close_range(2) when the kernel has it (5.9), else one close per fd. */
static void close_span(unsigned int lo, unsigned int hi) {
  if (lo > hi) return;
#ifdef SYS_close_range
  if (syscall(SYS_close_range, lo, hi, 0) == 0) return;
#endif
  {
    /* /proc/self/fd lists the open ones; without /proc, every number up to RLIMIT_NOFILE */
    DIR *d = opendir("/proc/self/fd");
    if (d != NULL) {
      struct dirent *e;
      int self = dirfd(d);
      while ((e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end != '\0' || e->d_name[0] == '\0' || fd == self) continue;
        if ((unsigned long)fd >= lo && (unsigned long)fd <= hi) close((int)fd);
      }
      closedir(d);
    } else {
      struct rlimit rl;
      unsigned long max = 65536, fd;
      if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) max = rl.rlim_cur;
      for (fd = lo; fd <= hi && fd < max; fd++) close((int)fd);
    }
  }
}

/* Closes every fd above 2 except `keep` (-1: none). */
static void close_fds_except(int keep) {
  if (keep < 3) {
    close_span(3, ~0U);
    return;
  }
  close_span(3, (unsigned int)keep - 1);
  close_span((unsigned int)keep + 1, ~0U);
}

static void join_cgroup(const char *dir) {
  char path[4096];
  int fd;
  if (snprintf(path, sizeof path, "%s/cgroup.procs", dir) >= (int)sizeof path) {
    errno = ENAMETOOLONG;
    die("joining cgroup", dir);
  }
  /* "0" means the writing process; children forked afterwards start inside the cgroup. */
  fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("joining cgroup", dir);
  if (write(fd, "0", 1) != 1) die("joining cgroup", dir);
  if (close(fd) < 0) die("joining cgroup", dir);
}

static void loopback_up(void) {
  struct ifreq ifr;
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) die("bringing up", "lo");
  memset(&ifr, 0, sizeof ifr);
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) die("bringing up", "lo");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) die("bringing up", "lo");
  close(s);
}

static void private_tmp(const char *bytes) {
  static const char *const dirs[] = {"/tmp", "/var/tmp", "/dev/shm"};
  char opts[64];
  snprintf(opts, sizeof opts, "size=%s,mode=1777", bytes);
  /*
   * A mount namespace of our own first (cheap when unshare --mount already made one): whatever
   * argv we were started with, these mounts never land in the caller's namespace, and private
   * propagation keeps them from leaking out through a shared mount.
   */
  if (unshare(CLONE_NEWNS) < 0) die("making a mount namespace for", "the private tmp");
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("making private", "/");
  for (size_t k = 0; k < sizeof dirs / sizeof dirs[0]; k++) {
    if (mount("tmpfs", dirs[k], "tmpfs", MS_NODEV | MS_NOSUID, opts) == 0) continue;
    /* a directory the host lacks is no scratch space anyone shares */
    if (errno == ENOENT) continue;
    die("mounting a private tmpfs on", dirs[k]);
  }
}

/*
 * The kernel only queues a signal for a namespace init when it is blocked or has a handler
 * (sig_ignored() checks the blocked mask first); we block them and take them with sigwaitinfo.
 * The empty handlers are a second guard for the moments the mask changes, and exec resets them
 * in the child anyway.
 */
static void on_signal(int sig) { (void)sig; }

int main(int argc, char **argv) {
  const char *cgroup = NULL, *tmp_bytes = NULL;
  int lo = 0, i, errpipe[2];
  sigset_t wait_set, old_set;
  struct sigaction sa;
  pid_t child;

  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) { i++; break; }
    if (strcmp(argv[i], "--lo") == 0) { lo = 1; continue; }
    if (i + 1 >= argc) usage("missing value or COMMAND");
    if (strcmp(argv[i], "--cgroup") == 0) { cgroup = argv[++i]; continue; }
    if (strcmp(argv[i], "--private-tmp") == 0) {
      char *end;
      unsigned long long v;
      tmp_bytes = argv[++i];
      errno = 0;
      v = strtoull(tmp_bytes, &end, 10);
      if (tmp_bytes[0] < '0' || tmp_bytes[0] > '9' || *end != '\0' || errno != 0 || v == 0)
        usage("--private-tmp needs a size in bytes");
      continue;
    }
    if (strcmp(argv[i], "--status-fd") == 0) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < 0 || v > 65535) usage("--status-fd needs a file descriptor");
      status_fd = (int)v;
      /* the user's command must not inherit it: our write is the only status */
      if (fcntl(status_fd, F_SETFD, FD_CLOEXEC) < 0) die("using status fd", argv[i]);
      continue;
    }
    usage("unknown option");
  }
  if (i >= argc) usage("missing -- COMMAND");
  close_fds_except(status_fd);

  if (cgroup != NULL) join_cgroup(cgroup);
  if (lo) loopback_up();
  if (tmp_bytes != NULL) private_tmp(tmp_bytes);

  sigemptyset(&wait_set);
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (size_t k = 0; k < NFORWARDED; k++) {
    sigaddset(&wait_set, forwarded[k]);
    sigaction(forwarded[k], &sa, NULL);
  }
  sigaddset(&wait_set, SIGCHLD);
  sigaction(SIGCHLD, &sa, NULL);
  /* a status reader that went away must not kill PID 1 (and with it the whole namespace) */
  signal(SIGPIPE, SIG_IGN);
  if (sigprocmask(SIG_BLOCK, &wait_set, &old_set) < 0) die("blocking", "signals");
  /* from here a signal for us stays pending until sigwaitinfo takes it: safe to send */
  report("ready\n", NULL, 0);

  /* exec failures come back through a close-on-exec pipe: EOF means exec succeeded */
  if (pipe2(errpipe, O_CLOEXEC) < 0) die("creating", "pipe");

  child = fork();
  if (child < 0) die("forking", argv[i]);
  if (child == 0) {
    sigset_t empty;
    int err;
    for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL); /* fails harmlessly for KILL, STOP, RT */
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    close(errpipe[0]);
    /* the status fd is the init's; errpipe[1] goes with the exec (close-on-exec) */
    close_fds_except(errpipe[1]);
    execvp(argv[i], &argv[i]);
    err = errno;
    fprintf(stderr, "hostplane-nsinit: starting %s: %s\n", argv[i], strerror(err));
    write_all(errpipe[1], (const char *)&err, sizeof err);
    _exit(EXIT_EXEC);
  }
  close(errpipe[1]);
  {
    int err = 0;
    ssize_t n;
    do n = read(errpipe[0], &err, sizeof err); while (n < 0 && errno == EINTR);
    close(errpipe[0]);
    if (n == (ssize_t)sizeof err) {
      report("failed %s\n", strerror(err), 0);
      waitpid(child, NULL, 0);
      return EXIT_EXEC;
    }
  }

  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&wait_set, &info);
    if (sig < 0) continue; /* EINTR */
    if (sig != SIGCHLD) {
      kill(child, sig);
      continue;
    }
    /* SIGCHLD coalesces: reap everything that is ready, orphans included (we are their init) */
    for (;;) {
      int st;
      pid_t p = waitpid(-1, &st, WNOHANG);
      if (p <= 0) break;
      if (p != child) continue;
      if (WIFSIGNALED(st)) {
        report("signaled %d\n", NULL, WTERMSIG(st));
        return 128 + WTERMSIG(st);
      }
      report("exited %d\n", NULL, WEXITSTATUS(st));
      /* returning makes the kernel SIGKILL whatever is left in the namespace */
      return WEXITSTATUS(st);
    }
  }
}
