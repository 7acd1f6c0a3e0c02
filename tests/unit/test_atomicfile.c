/*
 * test_atomicfile: a reader sees the whole old file or the whole new one,
 * never a wrong payload: round trips, every truncation and every flipped
 * byte is -EBADMSG, and a crash at each j-* point leaves old or new
 * content plus a temp file that atomicfile_cleanup removes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "crashpoints/crashpoint.h"
#include "tests/lib/tap.h"

static char dir[64];
static char path[128];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/baton-af-XXXXXX");
	require(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/journal", dir);
}

/* Names in dir containing ".tmp." (left-over temp files). */
static int
count_tmp(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strstr(e->d_name, ".tmp."))
			n++;
	closedir(d);
	return n;
}

static void
teardown(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(dir);
}

static void
put_raw(const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	require(fd >= 0, "open: %s", strerror(errno));
	require(write(fd, buf, len) == (ssize_t)len, "write");
	close(fd);
}

static size_t
get_raw(void *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	require(fd >= 0, "open: %s", strerror(errno));
	n = read(fd, buf, size);
	close(fd);
	require(n >= 0, "read");
	return (size_t)n;
}

/* Does path read back as exactly want? */
static bool
reads_as(const char *want, size_t wlen)
{
	void *data = NULL;
	size_t len = 0;
	int r = atomicfile_read(path, ATOMICFILE_MAX, &data, &len);
	bool ok = r == 0 && len == wlen && memcmp(data, want, wlen) == 0;

	if (r != 0)
		tap_diag("atomicfile_read: %s", strerror(-r));
	free(data);
	return ok;
}

TEST(roundtrip)
{
	static const char msg[] = "allocation table v1";
	size_t big = 1u << 20, i;
	struct stat st;
	char *buf, raw[4];
	void *data = NULL;
	size_t len = 99;
	int r;

	setup();
	r = atomicfile_write(path, msg, sizeof(msg), 0600);
	check_eq(r, 0);
	check(reads_as(msg, sizeof(msg)), "payload comes back");
	check(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600,
	    "mode 0600");
	get_raw(raw, sizeof(raw));
	check(memcmp(raw, "BTNF", 4) == 0, "magic on disk");
	check_eq(count_tmp(), 0);

	/* Replace with a large payload, then with an empty one. */
	buf = malloc(big);
	require(buf != NULL, "malloc");
	for (i = 0; i < big; i++)
		buf[i] = (char)(i * 131 + 7);
	r = atomicfile_write(path, buf, big, 0600);
	check_eq(r, 0);
	check(reads_as(buf, big), "1 MiB payload comes back");
	free(buf);
	r = atomicfile_write(path, NULL, 0, 0600);
	check_eq(r, 0);
	r = atomicfile_read(path, ATOMICFILE_MAX, &data, &len);
	check_eq(r, 0);
	check_eq(len, 0);
	check(data != NULL, "empty payload still gets a buffer");
	free(data);
	check_eq(count_tmp(), 0);
	teardown();
}

/* The same file, not waited to the disk: same format, same reader. */
TEST(nosync_writes_the_same_file)
{
	static const char a[] = "phase draining", b[] = "phase sealing";
	char raw[4];

	setup();
	check_eq(atomicfile_write(path, a, sizeof(a), 0600), 0);
	check_eq(atomicfile_write_nosync(path, b, sizeof(b), 0600), 0);
	check(reads_as(b, sizeof(b)), "the newer payload comes back");
	get_raw(raw, sizeof(raw));
	check(memcmp(raw, "BTNF", 4) == 0, "magic on disk");
	check_eq(count_tmp(), 0);
}

/* Rewritten in place: the same format, longer or shorter, no temp file. */
TEST(overwrite_in_place_reads_the_same)
{
	static const char a[] = "a table of some length, seq 1", b[] = "seq 2",
	    c[] = "a longer table than both before it, seq 3";
	uint8_t sum[ATOMICFILE_SUM_LEN];
	struct stat st;
	ino_t ino;

	setup();
	atomicfile_sum(a, sizeof(a), sum);
	check_eq(atomicfile_overwrite(path, a, sizeof(a), 0600, sum), 0);
	check(reads_as(a, sizeof(a)), "made");
	require(stat(path, &st) == 0, "stat");
	ino = st.st_ino;
	atomicfile_sum(b, sizeof(b), sum);
	check_eq(atomicfile_overwrite(path, b, sizeof(b), 0600, sum), 0);
	check(reads_as(b, sizeof(b)), "shorter: truncated");
	atomicfile_sum(c, sizeof(c), sum);
	check_eq(atomicfile_overwrite(path, c, sizeof(c), 0600, sum), 0);
	check(reads_as(c, sizeof(c)), "longer");
	require(stat(path, &st) == 0, "stat");
	check(st.st_ino == ino, "the same file, in place");
	check_eq(count_tmp(), 0);
	/* A checksum that is not the payload's reads as damage. */
	check_eq(atomicfile_overwrite(path, a, sizeof(a), 0600, sum), 0);
	check(!reads_as(a, sizeof(a)) && !reads_as(c, sizeof(c)),
	    "a wrong checksum never reads");
	teardown();
}

TEST(missing_and_limits)
{
	char payload[100];
	void *data = NULL;
	size_t len;
	int r;

	setup();
	r = atomicfile_read(path, ATOMICFILE_MAX, &data, &len);
	check_eq(r, -ENOENT);
	memset(payload, 'x', sizeof(payload));
	r = atomicfile_write(path, payload, sizeof(payload), 0600);
	check_eq(r, 0);
	r = atomicfile_read(path, sizeof(payload) - 1, &data, &len);
	check_eq(r, -EFBIG);
	r = atomicfile_read(path, sizeof(payload), &data, &len);
	check_eq(r, 0);
	free(data);
	r = atomicfile_write(path, payload, (size_t)ATOMICFILE_MAX + 1, 0600);
	check_eq(r, -EFBIG);
	check_eq(count_tmp(), 0);
	/* Remove is idempotent. */
	r = atomicfile_remove(path);
	check_eq(r, 0);
	check(access(path, F_OK) < 0 && errno == ENOENT, "file gone");
	r = atomicfile_remove(path);
	check_eq(r, 0);
	/* A file that is not ours at all. */
	put_raw("hello, world, this is not an atomicfile at all....", 50);
	r = atomicfile_read(path, ATOMICFILE_MAX, &data, &len);
	check_eq(r, -EBADMSG);
	teardown();
}

TEST(torn_file_never_reads)
{
	static const char msg[] = "{\"alloc\":\"a1\",\"pid\":42}";
	char full[256];
	size_t n, off;
	void *data;
	size_t len;
	int r, bad = 0;

	setup();
	r = atomicfile_write(path, msg, sizeof(msg) - 1, 0600);
	require(r == 0, "write");
	n = get_raw(full, sizeof(full));
	require(n == 48 + sizeof(msg) - 1, "file size %zu", n);
	for (off = 0; off < n; off++) {
		put_raw(full, off);
		data = NULL;
		r = atomicfile_read(path, ATOMICFILE_MAX, &data, &len);
		if (r != -EBADMSG) {
			tap_diag("cut at %zu: r=%d", off, r);
			bad++;
		}
		free(data);
	}
	check_eq(bad, 0);
	/* Trailing junk is damage too. */
	full[n] = '\n';
	put_raw(full, n + 1);
	data = NULL;
	r = atomicfile_read(path, ATOMICFILE_MAX, &data, &len);
	check_eq(r, -EBADMSG);
	free(data);
	put_raw(full, n);
	check(reads_as(msg, sizeof(msg) - 1), "intact copy reads");
	teardown();
}

TEST(flipped_byte_never_reads)
{
	static const char msg[] = "state: committed handoff 7";
	char full[256];
	size_t n, off;
	void *data;
	size_t len;
	int r, bad = 0, bit;

	setup();
	r = atomicfile_write(path, msg, sizeof(msg) - 1, 0600);
	require(r == 0, "write");
	n = get_raw(full, sizeof(full));
	for (off = 0; off < n; off++) {
		for (bit = 0; bit < 8; bit += 7) {
			full[off] ^= (char)(1 << bit);
			put_raw(full, n);
			full[off] ^= (char)(1 << bit);
			data = NULL;
			r = atomicfile_read(path, ATOMICFILE_MAX, &data, &len);
			if (r != -EBADMSG) {
				tap_diag("flip %zu bit %d: r=%d", off, bit, r);
				bad++;
			}
			free(data);
		}
	}
	check_eq(bad, 0);
	teardown();
}

TEST(cleanup_removes_only_stale_temps)
{
	char p[256];
	int r, fd;

	setup();
	r = atomicfile_write(path, "x", 1, 0600);
	require(r == 0, "write");
	/* A dead writer's temp (pid above pid_max), ours, and look-alikes. */
	snprintf(p, sizeof(p), "%s.tmp.999999999", path);
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(fd);
	snprintf(p, sizeof(p), "%s.tmp.%ld", path, (long)getpid());
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(fd);
	snprintf(p, sizeof(p), "%s.tmp.abc", path);
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(fd);
	snprintf(p, sizeof(p), "%s/other.tmp.1", dir);
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(fd);
	/* A live other process (our parent) is mid-write: leave it. */
	snprintf(p, sizeof(p), "%s.tmp.%ld", path, (long)getppid());
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(fd);

	r = atomicfile_cleanup(path);
	check_eq(r, 1);		/* ours may be in flight in a thread: kept */
	check_eq(count_tmp(), 4);
	snprintf(p, sizeof(p), "%s.tmp.abc", path);
	check(access(p, F_OK) == 0, "non-numeric suffix kept");
	snprintf(p, sizeof(p), "%s/other.tmp.1", dir);
	check(access(p, F_OK) == 0, "other file's temp kept");
	check(reads_as("x", 1), "target untouched");
	r = atomicfile_cleanup(path);
	check_eq(r, 0);
	/* Our own stale temp does not block a write either. */
	snprintf(p, sizeof(p), "%s.tmp.%ld", path, (long)getpid());
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	close(fd);
	r = atomicfile_write(path, "y", 1, 0600);
	check_eq(r, 0);
	check(reads_as("y", 1), "rewritten");
	teardown();
}

#ifdef BATON_CRASHPOINTS
/*
 * Write OLD, then have a child write NEW and die at `point`.  Before the
 * rename the file must still be OLD; from the rename on it must be NEW.
 */
static void
crash_at(const char *point, bool expect_new)
{
	static const char old[] = "old content, generation 1";
	static const char nu[] = "new content, generation 2, longer";
	char marker[256], buf[64];
	int status, r, fd;
	ssize_t n;
	pid_t pid;

	setup();
	r = atomicfile_write(path, old, sizeof(old), 0600);
	require(r == 0, "write old");
	fflush(stdout);
	pid = fork();
	require(pid >= 0, "fork");
	if (pid == 0) {
		setenv("HANDOFF_CRASH_AT", point, 1);
		setenv("HANDOFF_CRASH_MARKER_DIR", dir, 1);
		atomicfile_write(path, nu, sizeof(nu), 0600);
		_exit(0);
	}
	require(waitpid(pid, &status, 0) == pid, "waitpid");
	check(WIFEXITED(status) && WEXITSTATUS(status) == 99,
	    "child status 0x%x, want exit 99", status);
	snprintf(marker, sizeof(marker), "%s/crashed-unknown-%ld.marker", dir,
	    (long)pid);
	fd = open(marker, O_RDONLY | O_CLOEXEC);
	check(fd >= 0, "marker %s: %s", marker, strerror(errno));
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		close(fd);
		check(strcmp(buf, point) == 0, "marker holds '%s'", buf);
		unlink(marker);
	}
	if (expect_new)
		check(reads_as(nu, sizeof(nu)), "new content after %s", point);
	else
		check(reads_as(old, sizeof(old)), "old content after %s",
		    point);
	/* Before the rename the dead child's temp file is still there. */
	n = count_tmp();
	check_eq(n, expect_new ? 0 : 1);
	r = atomicfile_cleanup(path);
	check_eq(r, n);
	check_eq(count_tmp(), 0);
	/* And the file is writable again. */
	r = atomicfile_write(path, "z", 1, 0600);
	check_eq(r, 0);
	check(reads_as("z", 1), "write after crash");
	teardown();
}

TEST(crash_after_tmp_write)
{
	crash_at("j-after-tmp-write", false);
}

TEST(crash_after_tmp_fsync)
{
	crash_at("j-after-tmp-fsync", false);
}

TEST(crash_after_rename)
{
	crash_at("j-after-rename", true);
}
#else
TEST(crash_points)
{
	tap_skip("crash tests need BATON_CRASHPOINTS (make CRASHPOINTS=1)");
}
#endif

/* The retry rule the readiness file and the data-dir lock share. */
TEST(transient_errors)
{
	static const int again[] = { EIO, ENOSPC, EINTR, EAGAIN, EMFILE,
	    ENFILE };
	static const int final[] = { 0, ENOENT, EACCES, EROFS, EEXIST, EFBIG,
	    EINVAL, EBADMSG };
	size_t i;

	for (i = 0; i < sizeof(again) / sizeof(again[0]); i++)
		check(atomicfile_transient(-again[i]), "-%s retried",
		    strerror(again[i]));
	for (i = 0; i < sizeof(final) / sizeof(final[0]); i++)
		check(!atomicfile_transient(-final[i]), "-%s final",
		    strerror(final[i]));
	check(!atomicfile_transient(EIO), "a positive errno is not -errno");
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
