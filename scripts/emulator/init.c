/* PID 1 of the tiny Linux guest that scripts/emulator/run.sh boots in Bochs.
 *
 * Mounts devtmpfs, proc, sysfs and tmpfs, then runs /prog with the arguments
 * in /args and the environment in /env (NUL-separated lists written by
 * run.sh; an empty /env means PATH, HOME and TERM=dumb). The program's stdin
 * is /dev/null and its stdout and stderr go to /dev/ttyS1 (Bochs com2, which
 * run.sh streams). When it ends, init prints "MOE-EXIT <status>" (128+N if
 * killed by signal N, after a "MOE-SIGNAL N" line) on /dev/ttyS0 (com1, the
 * kernel console that run.sh watches) and powers off, which ends Bochs.
 *
 * Build: cc -static -O2 -o init init.c (scripts/emulator/setup.sh does). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

enum { LIST_BYTES = 1 << 20, LIST_ITEMS = 4096 };

/* Reads a file of NUL-terminated strings into a NULL-terminated vector,
 * optionally preceded by `first`. A missing file gives an empty list. */
static char **read_list(const char *path, char *first) {
  char *buf = malloc(LIST_BYTES);
  char **v = calloc(LIST_ITEMS, sizeof(char *));
  if (!buf || !v) return NULL;
  int n = 0;
  if (first) v[n++] = first;
  int fd = open(path, O_RDONLY);
  if (fd < 0) return v;
  ssize_t len = 0, r;
  while (len < LIST_BYTES - 1 && (r = read(fd, buf + len, LIST_BYTES - 1 - len)) > 0)
    len += r;
  close(fd);
  buf[len] = 0;
  for (ssize_t i = 0; i < len && n < LIST_ITEMS - 1; i += strlen(buf + i) + 1)
    v[n++] = buf + i;
  v[n] = NULL;
  return v;
}

/* No echo, no CR/LF translation: the host gets the program's bytes as is. */
static void raw_tty(int fd) {
  struct termios t;
  if (tcgetattr(fd, &t) != 0) return;
  cfmakeraw(&t);
  cfsetispeed(&t, B115200);
  cfsetospeed(&t, B115200);
  tcsetattr(fd, TCSANOW, &t);
}

static void finish(int con, int code) {
  if (con >= 0) {
    dprintf(con, "\nMOE-EXIT %d\n", code);
    tcdrain(con);
  }
  sync();
  reboot(RB_POWER_OFF); /* ACPI S5: Bochs exits */
  for (;;) pause();
}

static void mount_fs(const char *dir, mode_t mode, const char *type) {
  mkdir(dir, mode);
  mount(type, dir, type, 0, NULL);
}

int main(void) {
  mount_fs("/dev", 0755, "devtmpfs");
  mount_fs("/proc", 0555, "proc");
  mount_fs("/sys", 0555, "sysfs");
  mount_fs("/tmp", 01777, "tmpfs");
  mount_fs("/dev/shm", 01777, "tmpfs");

  int con = open("/dev/ttyS0", O_WRONLY | O_NOCTTY);
  int out = open("/dev/ttyS1", O_RDWR | O_NOCTTY);
  if (out < 0) {
    if (con >= 0) dprintf(con, "init: cannot open /dev/ttyS1: %s\n", strerror(errno));
    finish(con, 250);
  }
  raw_tty(out);
  if (con >= 0) dprintf(con, "\nMOE-START\n");

  char **argv = read_list("/args", "/prog");
  char **envp = read_list("/env", NULL);
  if (!argv || !envp) finish(con, 251);
  if (!envp[0]) {
    static char *def[] = {"PATH=/bin:/sbin:/usr/bin", "HOME=/", "TERM=dumb", NULL};
    envp = def;
  }

  pid_t pid = fork();
  if (pid == 0) {
    setsid();
    int nul = open("/dev/null", O_RDONLY);
    dup2(nul, 0);
    dup2(out, 1);
    dup2(out, 2);
    if (nul > 2) close(nul);
    if (out > 2) close(out);
    if (con > 2) close(con);
    execve("/prog", argv, envp);
    dprintf(2, "init: execve /prog failed: %s\n", strerror(errno));
    _exit(127);
  }
  if (pid < 0) finish(con, 252);

  /* As PID 1 we also reap the program's orphans; wait for the program. */
  int st = 0, code = 255;
  for (;;) {
    pid_t w = waitpid(-1, &st, 0);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) {
      st = -1;
      break;
    }
  }
  if (st != -1 && WIFEXITED(st)) {
    code = WEXITSTATUS(st);
  } else if (st != -1 && WIFSIGNALED(st)) {
    code = 128 + WTERMSIG(st);
    if (con >= 0) dprintf(con, "\nMOE-SIGNAL %d\n", WTERMSIG(st));
  }
  tcdrain(out);
  finish(con, code);
  return 0;
}
