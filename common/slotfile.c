/*
 * slotfile: a record in two slots written in place (slotfile.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/bytes.h"
#include "common/slotfile.h"
#include "crashpoints/crashpoint.h"

int
slotfile_name(char *buf, size_t cap, const char *path, unsigned i)
{
	int n = snprintf(buf, cap, "%s.%u", path, i);

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int
slotfile_pread_all(int fd, void *buf, size_t len, off_t off)
{
	uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = pread(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG;	/* shorter than its header says */
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

int
slotfile_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len > 0) {
		n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

int
slotfile_open(const char *slot, const char magic[4], size_t max,
    struct slotfile_hdr *h, int *ret_fd)
{
	uint8_t b[SLOTFILE_HDR];
	struct stat st;
	int fd, r;

	memset(h, 0, sizeof(*h));
	*ret_fd = -1;
	fd = open(slot, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	h->size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	*ret_fd = fd;
	if (h->size < SLOTFILE_HDR ||
	    slotfile_pread_all(fd, b, sizeof(b), 0) < 0)
		return 0;	/* exists, holds nothing (yet) */
	h->seq = be_get64(b + 8);
	h->len = be_get64(b + 16);
	memcpy(h->sum, b + 24, SLOTFILE_SUM_LEN);
	h->ok = memcmp(b, magic, 4) == 0 &&
	    be_get32(b + 4) == SLOTFILE_VERSION && h->len <= max &&
	    h->len <= h->size - SLOTFILE_HDR;
	return 0;
}

int
slotfile_payload(int fd, const struct slotfile_hdr *h, void **ret_buf)
{
	uint8_t sum[SLOTFILE_SUM_LEN];
	void *buf = malloc(h->len ? (size_t)h->len : 1);
	int r;

	if (!buf)
		return -ENOMEM;
	r = slotfile_pread_all(fd, buf, (size_t)h->len, SLOTFILE_HDR);
	if (r == 0) {
		atomicfile_sum(buf, (size_t)h->len, sum);
		r = memcmp(sum, h->sum, sizeof(sum)) == 0 ? 0 : -EBADMSG;
	}
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret_buf = buf;
	return 0;
}

int
slotfile_open_write(const char *slot, bool *ret_created)
{
	int fd = open(slot, O_WRONLY | O_CLOEXEC | O_NOCTTY);

	*ret_created = false;
	if (fd < 0 && errno == ENOENT) {
		fd = open(slot, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC |
		    O_NOCTTY, 0600);
		*ret_created = fd >= 0;
	}
	return fd < 0 ? -errno : fd;
}

int
slotfile_flush(int fd, const char *slot, bool created, bool sync)
{
	CRASHPOINT(j_after_tmp_write);
	if (!sync)
		return 0;
	if (fdatasync(fd) < 0)
		return -errno;
	return created ? atomicfile_sync_dir(slot) : 0;	/* its name, once */
}

void
slotfile_hdr_fill(uint8_t hdr[SLOTFILE_HDR], const char magic[4],
    uint64_t seq, const void *buf, size_t len)
{
	memset(hdr, 0, SLOTFILE_HDR);
	memcpy(hdr, magic, 4);
	be_put32(hdr + 4, SLOTFILE_VERSION);
	be_put64(hdr + 8, seq);
	be_put64(hdr + 16, len);
	atomicfile_sum(buf, len, hdr + 24);
}

int
slotfile_scan(char *const slot[2], const char magic[4], size_t max,
    struct slotfile_scan *sc, void **ret_buf)
{
	int fd[2] = { -1, -1 }, r = 0;
	unsigned i, k, order[2];
	void *buf = NULL;

	memset(sc, 0, sizeof(*sc));
	sc->best = -1;
	for (i = 0; i < 2; i++) {
		r = slotfile_open(slot[i], magic, max, &sc->h[i], &fd[i]);
		if (r < 0 && r != -ENOENT)
			goto out;
		r = 0;
		sc->nslots += fd[i] >= 0;
		if (sc->h[i].ok && sc->h[i].seq > sc->top)
			sc->top = sc->h[i].seq;
	}
	/* The slot claiming the higher seq first; the other if it is torn. */
	order[0] = sc->h[1].ok && (!sc->h[0].ok ||
	    sc->h[1].seq > sc->h[0].seq);
	order[1] = !order[0];
	for (k = 0; k < 2 && sc->best < 0; k++) {
		i = order[k];
		if (!sc->h[i].ok)
			continue;
		r = slotfile_payload(fd[i], &sc->h[i], &buf);
		if (r == 0)
			sc->best = (int)i;
		else if (r == -EBADMSG)
			sc->torn |= 1u << i;
		else
			goto out;
		r = 0;
	}
	if (sc->best >= 0 && ret_buf) {
		*ret_buf = buf;
		buf = NULL;
	}
out:
	free(buf);
	for (i = 0; i < 2; i++)
		if (fd[i] >= 0)
			close(fd[i]);
	return r;
}

/* Both slot names of path. */
static int
names(const char *path, char name[2][PATH_MAX], char *ptr[2])
{
	unsigned i;

	for (i = 0; i < 2; i++) {
		if (slotfile_name(name[i], PATH_MAX, path, i) < 0)
			return -ENAMETOOLONG;
		ptr[i] = name[i];
	}
	return 0;
}

int
slotfile_read(const char *path, const char magic[4], size_t max,
    void **ret_buf, size_t *ret_len, uint64_t *ret_seq)
{
	struct slotfile_scan sc;
	char name[2][PATH_MAX], *ptr[2];
	int r;

	if (max > ATOMICFILE_MAX)
		max = ATOMICFILE_MAX;
	r = names(path, name, ptr);
	if (r == 0)
		r = slotfile_scan(ptr, magic, max, &sc, ret_buf);
	if (r < 0)
		return r;
	if (sc.best < 0)
		return sc.nslots ? -EBADMSG : -ENOENT;
	*ret_len = (size_t)sc.h[sc.best].len;
	if (ret_seq)
		*ret_seq = sc.h[sc.best].seq;
	return 0;
}

int
slotfile_write(const char *path, const char magic[4], const void *buf,
    size_t len, bool sync)
{
	uint8_t hdr[SLOTFILE_HDR];
	char name[2][PATH_MAX], *ptr[2];
	struct slotfile_scan sc;
	void *whole = NULL;
	bool created = false;
	unsigned i;
	int fd, r;

	if (len > ATOMICFILE_MAX)
		return -EFBIG;
	/*
	 * The newest whole record decides which slot is written: never the
	 * one holding it.  Its payload is read to check it (records written
	 * this way are small); the seq goes past every plausible header.
	 */
	r = names(path, name, ptr);
	if (r == 0)
		r = slotfile_scan(ptr, magic, ATOMICFILE_MAX, &sc, &whole);
	free(whole);
	if (r < 0)
		return r;
	i = sc.best == 0 ? 1 : 0;
	slotfile_hdr_fill(hdr, magic, sc.top + 1, buf, len);
	fd = slotfile_open_write(name[i], &created);
	if (fd < 0)
		return fd;
	r = slotfile_pwrite_all(fd, hdr, sizeof(hdr), 0);
	if (r == 0)
		r = slotfile_pwrite_all(fd, buf, len, SLOTFILE_HDR);
	if (r < 0)
		goto out;
	r = slotfile_flush(fd, name[i], created, sync);
	if (r < 0)
		goto out;
	CRASHPOINT(j_after_tmp_fsync);
	CRASHPOINT(j_after_rename);
out:
	close(fd);
	return r;
}
