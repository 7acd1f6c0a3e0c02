/*
 * test_nsfile: the allocation table's files.  Writes alternate between
 * the two slots and keep the older builds' copy current; a reader takes
 * the newest copy whose checksum holds: the other slot when one is torn
 * (by hand, and by a crash at p-table-slot-torn), <path> when an older
 * build wrote it last, an error when that newest copy is damaged, and
 * an empty table when no write ever ended.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "successor/nsfile.h"
#include "successor/nsstate.h"
#include "tests/lib/tap.h"

static char dir[64];
static char path[128];

static void
setup(struct nsfile *f)
{
	snprintf(dir, sizeof(dir), "/tmp/baton-nsfile-XXXXXX");
	require(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/allocations", dir);
	require(nsfile_init(f, path) == 0, "init");
}

static void
teardown(const struct nsfile *f)
{
	char marker[256];

	(void)unlink(f->path);
	(void)unlink(f->slot[0]);
	(void)unlink(f->slot[1]);
	snprintf(marker, sizeof(marker), "rm -f %s/crashed-*.marker", dir);
	(void)system(marker);
	(void)atomicfile_cleanup(f->path);
	check(rmdir(dir) == 0, "nothing else left in %s (%s)", dir,
	    strerror(errno));
}

/* A table's bytes with this seq (and `pad` bytes of allocations). */
static uint8_t *
table(uint64_t seq, unsigned allocs, size_t *len)
{
	struct ns_table t = { 0 };
	struct ns_alloc *a;
	uint8_t *buf;
	unsigned i;

	t.seq = seq;
	t.generation = 3;
	for (i = 0; i < allocs; i++) {
		a = nsstate_alloc_new();
		require(a != NULL, "alloc");
		snprintf(a->id, sizeof(a->id), "job-%llu-%u",
		    (unsigned long long)seq, i);
		a->mask = 1u << NSV_NET;
		a->ino[NSV_NET] = 4026531000u + i;
		require(nsstate_insert(&t, a) == 0, "insert");
	}
	require(nsstate_encode(&t, &buf, len) == 0, "encode");
	nsstate_clear(&t);
	return buf;
}

static void
write_table(struct nsfile *f, uint64_t seq, unsigned allocs)
{
	uint8_t sum[NSFILE_SUM_LEN], want[NSFILE_SUM_LEN];
	size_t len;
	uint8_t *buf = table(seq, allocs, &len);

	check_eq(nsfile_write(f, buf, len, seq, sum), 0);
	atomicfile_sum(buf, len, want);
	check(memcmp(sum, want, sizeof(sum)) == 0, "digest of seq %llu",
	    (unsigned long long)seq);
	free(buf);
}

/* Read through a fresh nsfile: the table's seq, or -errno. */
static long long
read_seq(struct nsfile *f, const char **from)
{
	uint8_t sum[NSFILE_SUM_LEN], want[NSFILE_SUM_LEN];
	struct ns_table t = { 0 };
	void *buf = NULL;
	size_t len = 0;
	long long seq;
	int r;

	require(nsfile_init(f, path) == 0, "init");
	r = nsfile_read(f, ATOMICFILE_MAX, &buf, &len, sum, from);
	if (r < 0)
		return r;
	atomicfile_sum(buf, len, want);
	check(memcmp(sum, want, sizeof(sum)) == 0, "digest is the payload's");
	r = nsstate_decode(buf, len, &t);
	free(buf);
	check_eq(r, 0);
	seq = (long long)t.seq;
	nsstate_clear(&t);
	return seq;
}

/* Flip the byte at off of file p. */
static void
flip(const char *p, off_t off)
{
	uint8_t b;
	int fd = open(p, O_RDWR | O_CLOEXEC);

	require(fd >= 0, "open %s", p);
	require(pread(fd, &b, 1, off) == 1, "pread");
	b ^= 0x40;
	require(pwrite(fd, &b, 1, off) == 1, "pwrite");
	close(fd);
}

static void
copy_file(const char *from, const char *to)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "cp -p %s %s", from, to);
	require(system(cmd) == 0, "%s", cmd);
}

TEST(writes_alternate_and_every_copy_is_current)
{
	struct nsfile f, g;
	const char *from = NULL;
	void *buf;
	size_t len;
	struct ns_table t = { 0 };

	setup(&f);
	check_eq(read_seq(&g, NULL), -ENOENT);
	check_eq(g.cur, -1);
	write_table(&f, 1, 1);
	check_eq(f.cur, 0);
	write_table(&f, 2, 2);
	check_eq(f.cur, 1);
	write_table(&f, 3, 3);
	check_eq(f.cur, 0);
	check_eq(read_seq(&g, &from), 3);
	check(from && strcmp(from, "slot") == 0, "from a slot (%s)", from);
	check_eq(g.cur, 0);
	/* What an older build reads: the same table, checksummed. */
	require(atomicfile_read(path, ATOMICFILE_MAX, &buf, &len) == 0,
	    "older builds' copy");
	check_eq(nsstate_decode(buf, len, &t), 0);
	check_eq(t.seq, 3);
	check_eq(t.n, 3);
	nsstate_clear(&t);
	free(buf);
	/* The writer after that reader goes on in the other slot. */
	write_table(&g, 4, 1);
	check_eq(g.cur, 1);
	check_eq(read_seq(&f, NULL), 4);
	teardown(&f);
}

TEST(a_torn_slot_leaves_the_other)
{
	struct nsfile f, g;
	char saved[160];
	const char *from = NULL;

	setup(&f);
	write_table(&f, 1, 2);		/* slot 0 */
	write_table(&f, 2, 2);		/* slot 1 */
	snprintf(saved, sizeof(saved), "%s/saved", dir);
	copy_file(path, saved);
	/* Seq 3 into slot 0, torn before its flush: the copy never made. */
	write_table(&f, 3, 2);
	check_eq(f.cur, 0);
	require(rename(saved, path) == 0, "restore seq 2 copy");
	flip(f.slot[0], NSFILE_HDR + 20);
	check_eq(read_seq(&g, &from), 2);
	check(from && strcmp(from, "slot") == 0, "from a slot (%s)", from);
	check_eq(g.cur, 1);
	/* The next write replaces the torn one, never the good one. */
	write_table(&g, 3, 1);
	check_eq(g.cur, 0);
	check_eq(read_seq(&f, NULL), 3);
	/* Both slots torn and no copy: no write ever ended. */
	flip(f.slot[0], NSFILE_HDR + 1);
	flip(f.slot[1], NSFILE_HDR + 1);
	(void)unlink(path);
	check_eq(read_seq(&g, NULL), -ENOENT);
	teardown(&f);
}

TEST(an_older_builds_table_is_taken_when_newer)
{
	struct nsfile f, g;
	const char *from = NULL;
	uint8_t *buf;
	size_t len;

	setup(&f);
	/* An upgrade from a build without slots: <path> alone. */
	buf = table(7, 2, &len);
	require(atomicfile_write(path, buf, len, 0600) == 0, "older write");
	free(buf);
	check_eq(read_seq(&g, &from), 7);
	check(from && strcmp(from, "legacy") == 0, "from <path> (%s)", from);
	check_eq(g.cur, -1);
	write_table(&g, 8, 1);
	check_eq(g.cur, 0);
	write_table(&g, 9, 1);
	check_eq(g.cur, 1);
	/* A downgrade: the older build writes <path> only, seq 10. */
	buf = table(10, 4, &len);
	require(atomicfile_write(path, buf, len, 0600) == 0, "older write");
	free(buf);
	check_eq(read_seq(&f, &from), 10);
	check(from && strcmp(from, "legacy") == 0, "from <path> (%s)", from);
	check_eq(f.cur, 1);	/* the newest slot is kept as it is */
	write_table(&f, 11, 1);
	check_eq(f.cur, 0);
	check_eq(read_seq(&g, &from), 11);
	check(from && strcmp(from, "slot") == 0, "from a slot (%s)", from);
	teardown(&f);
}

TEST(a_damaged_newest_copy_is_an_error_an_older_one_is_not)
{
	struct nsfile f, g;
	struct stat st;
	uint8_t *buf;
	size_t len;

	setup(&f);
	write_table(&f, 1, 1);
	write_table(&f, 2, 1);
	/* <path> from an older build, seq 5, with a flipped last byte. */
	buf = table(5, 3, &len);
	require(atomicfile_write(path, buf, len, 0600) == 0, "older write");
	free(buf);
	require(stat(path, &st) == 0, "stat");
	flip(path, st.st_size - 1);
	check_eq(read_seq(&g, NULL), -EBADMSG);
	/* <path> damaged but older than the slots: the slots hold. */
	write_table(&f, 6, 1);
	flip(path, 0);
	check_eq(read_seq(&g, NULL), 6);
	/* Both slots damaged, <path> damaged too: an error. */
	flip(f.slot[0], NSFILE_HDR + 2);
	flip(f.slot[1], NSFILE_HDR + 2);
	check_eq(read_seq(&g, NULL), -EBADMSG);
	teardown(&f);
}

TEST(a_failed_write_moves_nothing)
{
	struct nsfile f;

	setup(&f);
	write_table(&f, 1, 1);
	check_eq(f.cur, 0);
	/* Slot 1 cannot be opened for writing. */
	require(mkdir(f.slot[1], 0700) == 0, "mkdir");
	{
		size_t len;
		uint8_t sum[NSFILE_SUM_LEN], *buf = table(2, 1, &len);

		check_eq(nsfile_write(&f, buf, len, 2, sum), -EISDIR);
		free(buf);
	}
	check_eq(f.cur, 0);
	require(rmdir(f.slot[1]) == 0, "rmdir");
	write_table(&f, 3, 1);
	check_eq(f.cur, 1);
	check_eq(read_seq(&f, NULL), 3);
	teardown(&f);
}

TEST(a_slot_grows_ahead_and_holds_a_shorter_table)
{
	struct nsfile f, g;
	struct stat st;
	off_t big;

	setup(&f);
	write_table(&f, 1, 2000);	/* slot 0 */
	write_table(&f, 2, 2000);	/* slot 1 */
	require(stat(f.slot[0], &st) == 0, "stat");
	big = st.st_size;
	check(big > 2 * 60 * 2000, "slot 0 grew ahead (%lld bytes)",
	    (long long)big);
	write_table(&f, 3, 1);		/* slot 0 again, much shorter */
	require(stat(f.slot[0], &st) == 0, "stat");
	check_eq(st.st_size, big);
	check_eq(read_seq(&g, NULL), 3);
	check_eq(g.cap[0], (uint64_t)big);
	teardown(&f);
}

TEST(locate_names_the_slot_of_a_sealed_seq)
{
	struct nsfile f, g;

	setup(&f);
	require(nsfile_init(&g, path) == 0, "init");
	nsfile_locate(&g, 1);
	check_eq(g.cur, -1);
	write_table(&f, 1, 1);
	write_table(&f, 2, 1);
	nsfile_locate(&g, 2);
	check_eq(g.cur, 1);
	nsfile_locate(&g, 1);
	check_eq(g.cur, 0);
	nsfile_locate(&g, 7);	/* an older build sealed <path> only */
	check_eq(g.cur, -1);
	check(g.cap[0] > 0 && g.cap[1] > 0, "sizes known");
	teardown(&f);
}

TEST(peek_seq_reads_a_prefix)
{
	size_t len;
	uint64_t seq = 0;
	uint8_t *buf = table(123456789, 50, &len);
	static const uint8_t noseq[] = { 0x81, 0xa1, 'v', 0x01 };

	check_eq(nsstate_peek_seq(buf, 64, &seq), 0);
	check_eq(seq, 123456789);
	check_eq(nsstate_peek_seq(buf, 4, &seq), -EBADMSG);
	check_eq(nsstate_peek_seq(noseq, sizeof(noseq), &seq), -EBADMSG);
	free(buf);
}

#ifdef BATON_CRASHPOINTS
TEST(a_crash_mid_slot_leaves_the_last_table)
{
	struct nsfile f, g;
	int status;
	pid_t pid;

	setup(&f);
	write_table(&f, 1, 300);
	write_table(&f, 2, 300);
	fflush(stdout);
	pid = fork();
	require(pid >= 0, "fork");
	if (pid == 0) {
		setenv("HANDOFF_CRASH_AT", "p-table-slot-torn", 1);
		setenv("HANDOFF_CRASH_MARKER_DIR", dir, 1);
		write_table(&f, 3, 600);
		_exit(0);
	}
	require(waitpid(pid, &status, 0) == pid, "waitpid");
	check(WIFEXITED(status) && WEXITSTATUS(status) == 99,
	    "child status 0x%x, want exit 99", status);
	check_eq(read_seq(&g, NULL), 2);
	check_eq(g.cur, 1);
	write_table(&g, 3, 1);
	check_eq(read_seq(&f, NULL), 3);
	teardown(&f);
}
#else
TEST(a_crash_mid_slot_leaves_the_last_table)
{
	tap_skip("crash tests need BATON_CRASHPOINTS (make CRASHPOINTS=1)");
}
#endif

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
