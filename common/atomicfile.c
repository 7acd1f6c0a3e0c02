/*
 * atomicfile: small files that are either entirely old or entirely new.
 *
 * On disk: "BTNF", u32 version, u64 payload length, SHA-256 of the
 * payload (all big-endian), then the payload.
 *
 * Invariants:
 *  - The target path only ever names a complete, fsynced file: bytes go to
 *    <path>.tmp.<pid> (same directory, so rename is atomic), are fsynced,
 *    and only then renamed over the target; the directory is fsynced so
 *    the rename itself survives a power cut.
 *  - A reader trusts nothing it cannot verify: magic, version, the length
 *    against the file size and the checksum against the payload.  A torn
 *    or flipped file is -EBADMSG, never a wrong payload.
 *  - Temp files are O_EXCL|O_CLOEXEC; one left by a crash is removed by
 *    atomicfile_cleanup, never read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/bytes.h"
#include "common/proc.h"
#include "crashpoints/crashpoint.h"

#define AF_MAGIC	"BTNF"
#define AF_VERSION	1u
#define AF_HDR		(4 + 4 + 8 + SHA256_DIGEST_SIZE)

static void
digest(const void *data, size_t len, uint8_t out[SHA256_DIGEST_SIZE])
{
	struct sha256_ctx ctx;

	sha256_init(&ctx);
	sha256_update(&ctx, len, data);
	sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads exactly len bytes; a short file is -EBADMSG (it was torn). */
static int
read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Split path into its directory (owned copy) and base name (borrowed). */
static int
split_path(const char *path, char **ret_dir, const char **ret_base)
{
	const char *slash = strrchr(path, '/');
	char *dir;

	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -ENOMEM;
	*ret_dir = dir;
	*ret_base = slash ? slash + 1 : path;
	return 0;
}

static int
fsync_dir_of(const char *path)
{
	/* No allocation: the table's writer thread calls this (nswriter.c). */
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	size_t n;
	int fd, r;

	if (!slash) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else {
		n = (size_t)(slash - path);
		if (n >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/*
 * temp file, write hdr and data, fsync, rename, fsync the directory
 * (without the fsyncs when !sync: atomic against a crash of any process,
 * not against a power loss).  Crash points only on checksummed writes
 * (the journal and the table), durable or not.
 */
static int
write_durable(const char *path, const uint8_t *hdr, size_t hlen,
    const void *data, size_t len, mode_t mode, bool sync)
{
	char tmp[PATH_MAX];
	/* Without fsync, j-after-tmp-fsync sits where the fsync would. */
	bool created = false, cp = hdr != NULL;
	int fd = -1, r, n;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0 && errno == EEXIST) {
		/* Our pid's leftover from an earlier life: never a writer. */
		if (unlink(tmp) < 0 && errno != ENOENT) {
			r = -errno;
			goto out;
		}
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	}
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	created = true;
	r = hdr ? write_all(fd, hdr, hlen) : 0;
	if (r < 0)
		goto out;
	r = write_all(fd, data, len);
	if (r < 0)
		goto out;
	if (cp)
		CRASHPOINT(j_after_tmp_write);
	if (sync && fsync(fd) < 0) {
		r = -errno;
		goto out;
	}
	if (cp)
		CRASHPOINT(j_after_tmp_fsync);
	r = close(fd) < 0 ? -errno : 0;
	fd = -1;
	if (r < 0)
		goto out;
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto out;
	}
	created = false;
	if (cp)
		CRASHPOINT(j_after_rename);
	r = sync ? fsync_dir_of(path) : 0;
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	return r;
}

/* The header for data: its checksum given (sum), or computed (NULL). */
static int
fill_hdr(uint8_t hdr[AF_HDR], const char *path, const void *data,
    size_t len, const uint8_t *sum)
{
	if (!path || (len > 0 && !data))
		return -EINVAL;
	if (len > ATOMICFILE_MAX)
		return -EFBIG;
	memcpy(hdr, AF_MAGIC, 4);
	be_put32(hdr + 4, AF_VERSION);
	be_put64(hdr + 8, len);
	if (sum)
		memcpy(hdr + 16, sum, ATOMICFILE_SUM_LEN);
	else
		digest(len ? data : "", len, hdr + 16);
	return 0;
}

static int
write_sum(const char *path, const void *data, size_t len, mode_t mode,
    uint8_t ret_sum[ATOMICFILE_SUM_LEN], bool sync)
{
	uint8_t hdr[AF_HDR];
	int r = fill_hdr(hdr, path, data, len, NULL);

	if (r == 0)
		r = write_durable(path, hdr, sizeof(hdr), data, len, mode,
		    sync);
	if (r == 0 && ret_sum)
		memcpy(ret_sum, hdr + 16, ATOMICFILE_SUM_LEN);
	return r;
}

int
atomicfile_write_sum(const char *path, const void *data, size_t len,
    mode_t mode, uint8_t ret_sum[ATOMICFILE_SUM_LEN])
{
	return write_sum(path, data, len, mode, ret_sum, true);
}

int
atomicfile_write_nosync(const char *path, const void *data, size_t len,
    mode_t mode)
{
	return write_sum(path, data, len, mode, NULL, false);
}

int
atomicfile_overwrite(const char *path, const void *data, size_t len,
    mode_t mode, const uint8_t sum[ATOMICFILE_SUM_LEN])
{
	uint8_t hdr[AF_HDR];
	struct stat st;
	int fd, r;

	r = fill_hdr(hdr, path, data, len, sum);
	if (r < 0)
		return r;
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY, mode);
	if (fd < 0)
		return -errno;
	r = fstat(fd, &st) < 0 ? -errno : 0;
	if (r == 0)
		r = write_all(fd, hdr, sizeof(hdr));
	if (r == 0)
		r = write_all(fd, data, len);
	if (r == 0 && (uint64_t)st.st_size > AF_HDR + len &&
	    ftruncate(fd, (off_t)(AF_HDR + len)) < 0)
		r = -errno;
	close(fd);
	return r;
}

void
atomicfile_sum(const void *data, size_t len, uint8_t ret[ATOMICFILE_SUM_LEN])
{
	digest(len ? data : "", len, ret);
}

int
atomicfile_write(const char *path, const void *data, size_t len,
    mode_t mode)
{
	return atomicfile_write_sum(path, data, len, mode, NULL);
}

bool
atomicfile_transient(int r)
{
	return r == -EIO || r == -ENOSPC || r == -EINTR || r == -EAGAIN ||
	    r == -EMFILE || r == -ENFILE;
}

int
atomicfile_write_plain(const char *path, const void *data, size_t len,
    mode_t mode)
{
	if (!path || (len > 0 && !data))
		return -EINVAL;
	if (len > ATOMICFILE_MAX)
		return -EFBIG;
	return write_durable(path, NULL, 0, data, len, mode, false);
}

int
atomicfile_read(const char *path, size_t max, void **ret_data,
    size_t *ret_len)
{
	return atomicfile_read_sum(path, max, ret_data, ret_len, NULL);
}

/*
 * Open path and check its header against the file: magic, version, and
 * the length against the size (a corrupted length is damage, not a big
 * file).  The fd is left at the payload.  0, or -errno (-EBADMSG).
 */
static int
open_checked(const char *path, uint8_t hdr[AF_HDR], uint64_t *ret_len,
    int *ret_fd)
{
	struct stat st;
	uint64_t len;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	r = fstat(fd, &st) < 0 ? -errno : 0;
	if (r == 0)
		r = S_ISREG(st.st_mode) ? read_all(fd, hdr, AF_HDR) : -EBADMSG;
	if (r < 0) {
		close(fd);
		return r;
	}
	len = be_get64(hdr + 8);
	if (memcmp(hdr, AF_MAGIC, 4) != 0 || be_get32(hdr + 4) != AF_VERSION ||
	    len > UINT64_MAX - AF_HDR || (uint64_t)st.st_size != AF_HDR + len) {
		close(fd);
		return -EBADMSG;
	}
	*ret_len = len;
	*ret_fd = fd;
	return 0;
}

int
atomicfile_read_sum(const char *path, size_t max, void **ret_data,
    size_t *ret_len, uint8_t ret_sum[ATOMICFILE_SUM_LEN])
{
	uint8_t hdr[AF_HDR], sum[SHA256_DIGEST_SIZE];
	uint64_t len;
	void *buf = NULL;
	int fd = -1, r;

	if (!path || !ret_data || !ret_len)
		return -EINVAL;
	if (max > ATOMICFILE_MAX)
		max = ATOMICFILE_MAX;
	r = open_checked(path, hdr, &len, &fd);
	if (r < 0)
		return r;
	if (len > max) {
		r = -EFBIG;
		goto out;
	}
	/* malloc(0) may return NULL; always hand back a real buffer. */
	buf = malloc(len ? (size_t)len : 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	r = read_all(fd, buf, (size_t)len);
	if (r < 0)
		goto out;
	digest(buf, (size_t)len, sum);
	if (memcmp(sum, hdr + 16, sizeof(sum)) != 0) {
		r = -EBADMSG;
		goto out;
	}
	*ret_data = buf;
	*ret_len = (size_t)len;
	if (ret_sum)
		memcpy(ret_sum, sum, ATOMICFILE_SUM_LEN);
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

int
atomicfile_peek(const char *path, void *buf, size_t cap, size_t *ret_n)
{
	uint8_t hdr[AF_HDR];
	uint64_t len;
	int fd, r;

	r = open_checked(path, hdr, &len, &fd);
	if (r < 0)
		return r;
	if (cap > len)
		cap = (size_t)len;
	r = read_all(fd, buf, cap);
	if (r == 0)
		*ret_n = cap;
	close(fd);
	return r;
}

int
atomicfile_remove(const char *path)
{
	if (!path)
		return -EINVAL;
	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	return fsync_dir_of(path);
}

int
atomicfile_sync_dir(const char *path)
{
	return fsync_dir_of(path);
}

/* "<digits>" that names a process still running (other than us)? */
static bool
owner_alive(const char *digits)
{
	char *end;
	long pid;

	errno = 0;
	pid = strtol(digits, &end, 10);
	if (errno || *end || end == digits || pid <= 0 || pid > INT_MAX)
		return false;
	/*
	 * Ours: another thread of ours may be writing it right now (the
	 * table's writer thread).  A leftover of an earlier process with our
	 * pid is replaced by our next write (write_durable), never in the way.
	 */
	if ((pid_t)pid == getpid())
		return true;
	/* A killed writer not yet reaped is a zombie: it writes no more. */
	return proc_running((pid_t)pid);
}

int
atomicfile_cleanup(const char *path)
{
	const char *base, *suffix;
	char *dir = NULL;
	struct dirent *e;
	DIR *d = NULL;
	size_t blen;
	int r, removed = 0;

	if (!path)
		return -EINVAL;
	r = split_path(path, &dir, &base);
	if (r < 0)
		goto out;
	blen = strlen(base);
	d = opendir(dir);
	if (!d) {
		r = -errno;
		goto out;
	}
	for (;;) {
		errno = 0;
		e = readdir(d);
		if (!e) {
			r = errno ? -errno : 0;
			break;
		}
		if (strncmp(e->d_name, base, blen) != 0 ||
		    strncmp(e->d_name + blen, ".tmp.", 5) != 0)
			continue;
		suffix = e->d_name + blen + 5;
		if (!*suffix || strspn(suffix, "0123456789") != strlen(suffix))
			continue;
		/*
		 * A live writer's temp file is not stale.  The data-dir lock
		 * makes that rare; this keeps it harmless.
		 */
		if (owner_alive(suffix))
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT) {
			r = -errno;
			goto out;
		}
		removed++;
	}
	if (r == 0 && removed > 0 && fsync(dirfd(d)) < 0)
		r = -errno;
out:
	if (d)
		closedir(d);
	free(dir);
	return r < 0 ? r : removed;
}
