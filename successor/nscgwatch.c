/*
 * nscgwatch: the cgroup-empty watch (inotify on cgroup.events, a tick for
 * scopes not there yet), allocations whose init died, and allocation
 * cgroups left to remove.  Invariants: nsserver_int.h.
 */
#include "successor/nsserver_int.h"

static bool cg_known_cb(const char *id, void *data);
static int read_populated(struct nsserver *s, const struct ns_alloc *a);
static void check_cg(struct nsserver *s, struct ns_alloc *a, bool gone,
    bool changed);
static struct ns_alloc *find_wd(struct nsserver *s, int wd);

/* ---- allocations whose init died; allocation cgroups ---- */

/*
 * Mark a dead (its pid namespace can take no process any more): it is
 * kept, answered with NS_ERROR and counted in STATUS until released.
 */
void
nss_mark_dead(struct ns_alloc *a, const char *why)
{
	if (a->dead)
		return;
	a->dead = true;
	log_error("ns.init_dead", why, "allocation_id=%s reaper=%d",
	    a->id, (int)a->reaper);
}

/* With a pid namespace: its init still runs (checked before answering). */
bool
nss_init_alive(struct ns_alloc *a)
{
	const char *why = "";

	if (a->dead)
		return false;
	if (!(a->mask & NSVM_PID))
		return true;
	if (nsprov_check_init(a->reaper, a->ino[NSV_PID], &why) == 0)
		return true;
	nss_mark_dead(a, why);
	return false;
}

unsigned
nss_count_dead(const struct nsserver *s)
{
	const struct ns_alloc *a;
	unsigned n = 0;

	for (a = s->t.head; a; a = a->next)
		n += a->dead;
	return n;
}

static bool
cg_known_cb(const char *id, void *data)
{
	struct nsserver *s = data;

	return nsstate_find(&s->t, id) || nss_find_creation(s, id);
}

/* rmdir allocation cgroups nobody owns; again on the tick if busy. */
void
nss_sweep_cgroups(struct nsserver *s)
{
	s->cg_dirty = nscgroup_sweep(&s->cg, cg_known_cb, s) > 0;
}

/* ---- cgroup-empty ---- */

static int
read_populated(struct nsserver *s, const struct ns_alloc *a)
{
	char path[4096], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/workload.slice/%s.scope/"
	    "cgroup.events", s->cgroup_root, a->id);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	for (p = buf; p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, "populated ", 10) == 0)
			return p[10] == '1' ? 1 : p[10] == '0' ? 0 : -EINVAL;
	}
	return -ENODATA;	/* mid-rewrite: wait for the next event */
}

/*
 * changed: the kernel told us the file changed.  cgroupfs notifies only
 * when "populated" flips, so a change that reads 0 is a 1→0 edge even if
 * the 1 came and went before we could read it.
 */
static void
check_cg(struct nsserver *s, struct ns_alloc *a, bool gone, bool changed)
{
	int pop = gone ? 0 : read_populated(s, a);

	if (pop == 1 && !a->cg_seen) {
		a->cg_seen = true;
		if (s->sealed || nss_persist_async(s, NULL, NULL) < 0)
			s->dirty = true;
	} else if (pop == 0 && (a->cg_seen || changed) && !s->sealed) {
		log_info("ns.cgroup_empty", NULL, "allocation_id=%s", a->id);
		if (nss_release_alloc(s, a, "cgroup_empty", NULL) < 0)
			s->dirty = true;
	}
}

void
nss_watch_alloc(struct nsserver *s, struct ns_alloc *a)
{
	char path[4096];
	int wd;

	if (s->ino_fd < 0 || a->cg_wd >= 0)
		return;
	snprintf(path, sizeof(path), "%s/workload.slice/%s.scope/"
	    "cgroup.events", s->cgroup_root, a->id);
	wd = inotify_add_watch(s->ino_fd, path, IN_MODIFY | IN_DELETE_SELF);
	if (wd < 0) {
		if (s->slice_wd < 0) {
			snprintf(path, sizeof(path), "%s/workload.slice",
			    s->cgroup_root);
			s->slice_wd = inotify_add_watch(s->ino_fd, path,
			    IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
		}
		return;
	}
	a->cg_wd = wd;
	check_cg(s, a, false, false);
}

static struct ns_alloc *
find_wd(struct nsserver *s, int wd)
{
	struct ns_alloc *a;

	for (a = s->t.head; a; a = a->next)
		if (a->cg_wd == wd)
			return a;
	return NULL;
}

void
nss_inotify_cb(uv_poll_t *h, int status, int events)
{
	struct nsserver *s = h->data;
	char buf[4096] __attribute__((aligned(__alignof__(struct
	    inotify_event))));
	const struct inotify_event *ev;
	struct ns_alloc *a;
	char id[NSV_ID_MAX + 1];
	ssize_t n;
	size_t len;
	char *p;

	(void)status;
	(void)events;
	for (;;) {
		n = read(s->ino_fd, buf, sizeof(buf));
		if (n <= 0)
			return;
		for (p = buf; p < buf + n;
		    p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			if (ev->mask & IN_Q_OVERFLOW) {
				for (a = s->t.head; a; a = a->next)
					a->cg_wd = -1;
				continue;
			}
			if (ev->wd == s->slice_wd) {
				if (ev->mask & IN_IGNORED)
					s->slice_wd = -1;
				len = ev->len ? strlen(ev->name) : 0;
				if (len > 6 && len - 6 < sizeof(id) &&
				    strcmp(ev->name + len - 6, ".scope") == 0) {
					memcpy(id, ev->name, len - 6);
					id[len - 6] = '\0';
					a = nsstate_find(&s->t, id);
					if (a)
						nss_watch_alloc(s, a);
				}
				continue;
			}
			a = find_wd(s, ev->wd);
			if (!a)
				continue;
			if (ev->mask & (IN_IGNORED | IN_DELETE_SELF)) {
				a->cg_wd = -1;
				check_cg(s, a, true, false);
			} else {
				check_cg(s, a, false, true);
			}
		}
	}
}

void
nss_recheck_all(struct nsserver *s)
{
	struct ns_alloc *a, *next;

	for (a = s->t.head; a; a = next) {
		next = a->next;
		if (a->cg_wd < 0)
			nss_watch_alloc(s, a);
		else
			check_cg(s, a, false, false);
	}
}
