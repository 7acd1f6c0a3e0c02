/*
 * test_json: reading JSON from outside the process goes through jansson:
 * every escape decoded (\r, \b, \u00e9, surrogate pairs), UTF-8 kept,
 * nothing cut short, nested paths, and malformed input refused.
 */
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "tests/lib/tap.h"

TEST(escapes_are_decoded)
{
	char out[64];

	check(json_get_str("{\"s\":\"a\\rb\\bc\\td\\ne\\/f\\\\g\\\"\"}", "s",
	    out, sizeof(out)) == 1, "string read");
	check(strcmp(out, "a\rb\bc\td\ne/f\\g\"") == 0, "\\r \\b \\t \\n \\/ "
	    "decoded: [%s]", out);
}

TEST(non_ascii_is_kept)
{
	char out[64];

	check(json_get_str("{\"s\":\"caf\\u00e9 \\ud83d\\ude00 \xc3\xa9\"}", "s",
	    out, sizeof(out)) == 1, "string read");
	check(strcmp(out, "caf\xc3\xa9 \xf0\x9f\x98\x80 \xc3\xa9") == 0,
	    "\\u escapes become UTF-8, raw UTF-8 stays: [%s]", out);
	check(json_get_str("{\"s\":\"\xff\"}", "s", out, sizeof(out)) == -1,
	    "invalid UTF-8 is refused");
}

TEST(never_cut_short)
{
	char out[4];

	check(json_get_str("{\"s\":\"abcd\"}", "s", out, sizeof(out)) == -1 &&
	    out[0] == '\0', "a string longer than the buffer is an error");
	check(json_get_str("{\"s\":\"abc\"}", "s", out, sizeof(out)) == 1,
	    "one that fits is read");
	check(json_get_str("{\"s\":\"a\\u0000b\"}", "s", out, sizeof(out)) == -1,
	    "an embedded NUL is refused");
}

TEST(paths_types_and_bad_input)
{
	const char *js = "{\"supervisor\":{\"agent_pid\":42,\"handoff_id\":null,"
	    "\"ok\":true},\"agent\":null,\"neg\":-1,\"f\":1.5}";
	uint64_t v = 0;
	char out[16];

	check(json_get_u64(js, "supervisor.agent_pid", &v) && v == 42,
	    "nested integer");
	check(json_get_str(js, "supervisor.handoff_id", out, sizeof(out)) == 0,
	    "null is 0");
	check(json_get_bool(js, "supervisor.ok") == 1, "bool");
	check(json_has(js, "agent") && !json_has(js, "agent.pid"),
	    "a null object has no members");
	check(!json_get_u64(js, "neg", &v) && !json_get_u64(js, "f", &v),
	    "negative and fractional numbers are not u64");
	check(!json_has("{\"a\":1", "a"), "truncated document refused");
	check(!json_has("{\"a\":1,\"a\":2}", "a"), "duplicate keys refused");
	check(!json_has("{\"a\":1} trailing", "a"), "trailing garbage refused");
}

int
main(int argc, char **argv)
{
	return tap_main(argc, argv);
}
