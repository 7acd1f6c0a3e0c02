/*
 * test_nswriter: group commit and the moments between writes (where the
 * namespace helper is forked without waiting for the disk, in builds
 * where a fork waits for the writer), and when it does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "successor/nsfile.h"
#include "successor/nswriter.h"
#include "tests/lib/tap.h"

struct fix {
	uv_loop_t loop;
	struct nswriter *w;
	char dir[64], path[128];
	unsigned encoded;	/* snapshots taken (writes started) */
	int done_err[4];
	unsigned ndone;
	/* what a between callback saw */
	int between_err;
	unsigned between_runs;
	unsigned encoded_at_between;
	unsigned done_at_between;
	bool busy_at_between;
};

static int
encode_cb(void *data, uint8_t **buf, size_t *len, uint64_t *seq)
{
	struct fix *f = data;

	*buf = malloc(16);
	if (!*buf)
		return -ENOMEM;
	*len = (size_t)snprintf((char *)*buf, 16, "snap %u", ++f->encoded);
	*seq = f->encoded;
	return 0;
}

static void
written_cb(void *data, int err, const uint8_t *digest)
{
	(void)data;
	(void)err;
	(void)digest;
}

static void
done_cb(void *arg, int err)
{
	struct fix *f = arg;

	if (f->ndone < 4)
		f->done_err[f->ndone] = err;
	f->ndone++;
}

static void
between_cb(void *arg, int err)
{
	struct fix *f = arg;

	f->between_runs++;
	f->between_err = err;
	f->encoded_at_between = f->encoded;
	f->done_at_between = f->ndone;
	f->busy_at_between = nswriter_busy(f->w);
	/* What a fork here waits for: nothing (the thread is not writing). */
	nswriter_fork_lock();
	nswriter_fork_unlock();
}

static const struct nswriter_ops ops = { encode_cb, written_cb };

/* The table's copies (nsfile.h) and their directory. */
static void
remove_table(const char *path, const char *dir)
{
	char slot[160];
	unsigned i;

	(void)unlink(path);
	for (i = 0; i < 2; i++) {
		snprintf(slot, sizeof(slot), "%s.%u", path, i);
		(void)unlink(slot);
	}
	(void)rmdir(dir);
}

static void
fix_init(struct fix *f)
{
	struct nsfile file;

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_nswriter.XXXXXX");
	require(mkdtemp(f->dir), "mkdtemp");
	snprintf(f->path, sizeof(f->path), "%s/table", f->dir);
	require(nsfile_init(&file, f->path) == 0, "nsfile");
	require(uv_loop_init(&f->loop) == 0, "loop");
	require(nswriter_new(&f->loop, &file, &ops, f, &f->w) == 0, "new");
}

static void
fix_fini(struct fix *f)
{
	nswriter_free(f->w);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	check_eq(uv_loop_close(&f->loop), 0);
	remove_table(f->path, f->dir);
}

TEST_T(between_runs_at_once_when_idle, 30)
{
	struct fix f;

	fix_init(&f);
	check(!nswriter_busy(f.w), "idle at start");
	require(nswriter_between(f.w, between_cb, &f) == 0, "between");
	check_eq(f.between_runs, 1);
	check_eq(f.between_err, 0);
	check(!f.busy_at_between, "no write in flight");
	fix_fini(&f);
}

TEST_T(between_waits_for_the_write_and_runs_before_the_next, 30)
{
	struct fix f;

	fix_init(&f);
	require(nswriter_change(f.w, done_cb, &f) == 0, "change 1");
	check(nswriter_busy(f.w), "write 1 in flight");
	check_eq(f.encoded, 1);
	require(nswriter_between(f.w, between_cb, &f) == 0, "between");
	check_eq(f.between_runs, 0);
	/* A change made now rides write 2, which starts after the between. */
	require(nswriter_change(f.w, done_cb, &f) == 0, "change 2");
	check_eq(f.encoded, 1);
	while (f.ndone < 2)
		uv_run(&f.loop, UV_RUN_ONCE);
	check_eq(f.between_runs, 1);
	check_eq(f.between_err, 0);
	check(!f.busy_at_between, "no write in flight at the between");
	check_eq(f.done_at_between, 1);		/* write 1 answered first */
	check_eq(f.encoded_at_between, 1);	/* write 2 not started yet */
	check_eq(f.encoded, 2);
	check_eq(f.done_err[0], 0);
	check_eq(f.done_err[1], 0);
	fix_fini(&f);
}

TEST_T(between_cancelled_by_free, 30)
{
	struct fix f;

	fix_init(&f);
	require(nswriter_change(f.w, done_cb, &f) == 0, "change");
	require(nswriter_between(f.w, between_cb, &f) == 0, "between");
	nswriter_free(f.w);
	check_eq(f.between_runs, 1);
	check_eq(f.between_err, -ECANCELED);
	check_eq(f.ndone, 1);		/* the write in flight still ended */
	check_eq(f.done_err[0], 0);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	check_eq(uv_loop_close(&f.loop), 0);
	remove_table(f.path, f.dir);
}

/* This process's threads, once the count settles at want (or after 1 s). */
static long
threads_settle(long want)
{
	long n = -1;
	int i;

	for (i = 0; i < 100; i++) {
		n = tap_proc_status(getpid(), "Threads");
		if (n == want)
			break;
		usleep(10000);
	}
	return n;
}

/*
 * A successor starts its writer's thread in its head start: the next
 * writer takes that thread (no new one), writes with it, and only once;
 * a writer after it starts its own.
 */
TEST_T(prestarted_thread_taken_once, 30)
{
	long base = tap_proc_status(getpid(), "Threads");
	struct fix f, g;

	require(base >= 1, "thread count");
	require(nswriter_prestart() == 0, "prestart");
	check_eq(threads_settle(base + 1), base + 1);
	check_eq(nswriter_prestart(), 0);	/* one waits already */
	check_eq(threads_settle(base + 1), base + 1);
	fix_init(&f);
	check_eq(threads_settle(base + 1), base + 1);	/* it took that one */
	require(nswriter_change(f.w, done_cb, &f) == 0, "change");
	while (f.ndone < 1)
		uv_run(&f.loop, UV_RUN_ONCE);
	check_eq(f.done_err[0], 0);
	check_eq(f.encoded, 1);
	fix_init(&g);
	check_eq(threads_settle(base + 2), base + 2);	/* none waited */
	require(nswriter_change(g.w, done_cb, &g) == 0, "change");
	while (g.ndone < 1)
		uv_run(&g.loop, UV_RUN_ONCE);
	check_eq(g.done_err[0], 0);
	fix_fini(&g);
	fix_fini(&f);
	check_eq(threads_settle(base), base);	/* both joined */
}

/* A fork waits for the writer only where a library may sit in its calls. */
TEST(fork_waits_only_where_interposed)
{
	char dir[] = "/tmp/baton-test-nsw.XXXXXX", file[64];
	FILE *fp;

	require(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(file, sizeof(file), "%s/ld.so.preload", dir);
	check(!nswriter_fork_waits_for(false, NULL, file), "plain glibc");
	check(!nswriter_fork_waits_for(false, "", file), "LD_PRELOAD empty");
	check(nswriter_fork_waits_for(false, "/usr/lib/fiu/"
	    "fiu_posix_preload.so", file), "LD_PRELOAD set");
	check(nswriter_fork_waits_for(true, NULL, file), "sanitizer");
	require((fp = fopen(file, "w")) != NULL, "create %s", file);
	fclose(fp);
	check(!nswriter_fork_waits_for(false, NULL, file), "preload file empty");
	require((fp = fopen(file, "w")) != NULL, "open %s", file);
	fputs("/usr/lib/libeatmydata.so\n", fp);
	fclose(fp);
	check(nswriter_fork_waits_for(false, NULL, file), "preload file set");
#if defined(__SANITIZE_ADDRESS__)
	check(nswriter_fork_waits(), "this sanitizer build waits");
#endif
	(void)unlink(file);
	(void)rmdir(dir);
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
