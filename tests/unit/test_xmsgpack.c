/*
 * test_xmsgpack: baton's body codec against an independent msgpack
 * implementation (Debian's python3-msgpack, tests/xcheck/xmsgpack.py).
 *
 * For every catalogue message (generated from messages.def): baton
 * encodes, python decodes strictly and checks the bytes are the
 * canonical encoding, then re-encodes with the keys reversed and an
 * unknown nested key; baton must decode that to an equal message.  Then
 * python builds a few bodies on its own and baton's decode is checked
 * field by field.  Skips when /usr/bin/python3 or its msgpack is absent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/frame.h"
#include "tests/lib/tap.h"
#include "tests/unit/msg_fixture.h"

#define PYTHON "/usr/bin/python3"

static char script[4096];
static char dir[64];

/* Run the script with up to 3 arguments; returns its exit status. */
static int
py(const char *a1, const char *a2, const char *a3)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execl(PYTHON, PYTHON, script, a1, a2, a3, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void
setup(void)
{
	const char *src = getenv("BATON_SRCDIR");

	snprintf(script, sizeof(script), "%s/tests/xcheck/xmsgpack.py",
	    src != NULL ? src : ".");
	if (access(PYTHON, X_OK) != 0)
		tap_skip("%s is not installed", PYTHON);
	if (access(script, R_OK) != 0)
		tap_skip("%s not found (run from the repo or set BATON_SRCDIR)",
		    script);
	if (py("check", NULL, NULL) != 0)
		tap_skip("python3-msgpack is not installed for %s", PYTHON);
	snprintf(dir, sizeof(dir), "/tmp/test_xmsgpack.XXXXXX");
	require(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
}

static int
write_file(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (f == NULL)
		return -1;
	ok = fwrite(p, 1, n, f) == n;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static uint8_t *
read_file(const char *path, size_t *ret_n)
{
	uint8_t *buf = malloc(FRAME_MAX_BODY);
	FILE *f = fopen(path, "rb");

	if (f == NULL || buf == NULL) {
		if (f != NULL)
			fclose(f);
		free(buf);
		return NULL;
	}
	*ret_n = fread(buf, 1, FRAME_MAX_BODY, f);
	fclose(f);
	return buf;
}

static void
cleanup(const char *in, const char *out)
{
	unlink(in);
	unlink(out);
	rmdir(dir);
}

static void
cross(uint16_t type)
{
	char in[128], out[128];
	uint8_t *buf, *back;
	struct msg m, d;
	size_t len, blen;
	int r;

	setup();
	snprintf(in, sizeof(in), "%s/baton.bin", dir);
	snprintf(out, sizeof(out), "%s/python.bin", dir);
	require(fixture_fill(&m, type), "fixture");
	require(msg_encode(&m, &buf, &len) == 0, "encode");
	require(write_file(in, buf, len) == 0, "write %s", in);
	r = py("canon", in, out);
	check(r == 0, "python accepts %s as canonical msgpack (exit %d)",
	    msg_type_name(type), r);
	back = r == 0 ? read_file(out, &blen) : NULL;
	if (back != NULL) {
		r = msg_decode(type, back, blen, &d);
		check(r == 0, "baton decodes python's %s: %s",
		    msg_type_name(type), proto_strerror(r));
		if (r == 0) {
			check(msg_equal(&m, &d), "equal after the trip");
			msg_free(&d);
		}
		free(back);
	}
	free(buf);
	cleanup(in, out);
}

#define MSG(NAME, id, fields) TEST(python_##NAME) { cross(id); }
#include "proto/messages.def"
#undef MSG

/* Decode a body python built from its own table. */
static bool
built(const char *name, uint16_t type, struct msg *ret_m)
{
	char out[128];
	uint8_t *buf;
	size_t len;
	int r;

	setup();
	snprintf(out, sizeof(out), "%s/built.bin", dir);
	r = py("build", name, out);
	if (!check(r == 0, "python builds %s (exit %d)", name, r))
		return false;
	buf = read_file(out, &len);
	cleanup(out, out);
	if (!check(buf != NULL, "read"))
		return false;
	r = msg_decode(type, buf, len, ret_m);
	free(buf);
	return check(r == 0, "baton decodes %s: %s", name, proto_strerror(r));
}

TEST(python_built_bodies)
{
	struct msg m;
	uint32_t i;

	if (built("HELLO", MSG_HELLO, &m)) {
		check(strcmp(m.u.HELLO.role, "incumbent") == 0, "role");
		check(m.u.HELLO.pid == UINT32_MAX, "pid");
		check(strcmp(m.u.HELLO.build_id,
		    "py-build \xe2\x80\x94 42") == 0, "build_id UTF-8");
		check(m.u.HELLO.proto_min == 1 && m.u.HELLO.proto_max == 1,
		    "versions");
		check(m.u.HELLO.capabilities.n == 3 &&
		    strcmp(m.u.HELLO.capabilities.v[0], "seal-v2") == 0 &&
		    strcmp(m.u.HELLO.capabilities.v[1], "") == 0 &&
		    strcmp(m.u.HELLO.capabilities.v[2], "\xce\xbb") == 0,
		    "capabilities");
		check(msg_validate(&m, NULL) == 0, "valid");
		msg_free(&m);
	}
	if (built("NS_REQUEST", MSG_NS_REQUEST, &m)) {
		check(strcmp(m.u.NS_REQUEST.allocation_id, "py.alloc-7") == 0,
		    "allocation_id");
		check(m.u.NS_REQUEST.uenv_image == NULL, "None is NULL");
		check(m.u.NS_REQUEST.namespaces.n == 2 &&
		    strcmp(m.u.NS_REQUEST.namespaces.v[0], "mount") == 0 &&
		    strcmp(m.u.NS_REQUEST.namespaces.v[1], "pid") == 0,
		    "namespaces");
		check(msg_validate(&m, NULL) == 0, "valid");
		msg_free(&m);
	}
	if (built("SEAL_COMPLETE", MSG_SEAL_COMPLETE, &m)) {
		check(m.u.SEAL_COMPLETE.state_seq == UINT64_MAX, "u64 max");
		check(m.u.SEAL_COMPLETE.state_digest.len == 32, "digest len");
		for (i = 0; i < m.u.SEAL_COMPLETE.state_digest.len; i++)
			if (m.u.SEAL_COMPLETE.state_digest.p[i] != i)
				break;
		check(i == 32, "digest bytes");
		check(strcmp(m.u.SEAL_COMPLETE.handoff_id,
		    "123e4567-e89b-12d3-a456-426614174000") == 0, "id");
		check(msg_validate(&m, NULL) == 0, "valid");
		msg_free(&m);
	}
	if (built("HEARTBEAT", MSG_HEARTBEAT, &m))
		check(m.u.HEARTBEAT.ts_ms == 0, "ts_ms 0");
	if (built("CTL_UPGRADE_RESULT", MSG_CTL_UPGRADE_RESULT, &m)) {
		msg_CTL_UPGRADE_RESULT_t *b = &m.u.CTL_UPGRADE_RESULT;

		check(!b->committed, "committed");
		check(strcmp(b->abort_reason, "successor not ready") == 0,
		    "abort_reason");
		check(b->old_pid == 1 && b->new_pid == 65536, "pids");
		check(b->hello_ms == 127 && b->spawn_ms == 128 &&
		    b->drain_ms == 255 && b->seal_ms == 256 &&
		    b->begin_ms == 65535 && b->commit_ms == 65536 &&
		    b->total_ms == 4294967296ULL, "every integer width");
		msg_free(&m);
	}
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
