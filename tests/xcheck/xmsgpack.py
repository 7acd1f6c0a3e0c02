#!/usr/bin/python3
"""Cross-check baton's msgpack bodies against an independent implementation
(Debian's python3-msgpack).  Driven by tests/unit/test_xmsgpack.c.

  xmsgpack.py check            exit 0 if the msgpack module is usable
  xmsgpack.py canon IN OUT     IN is a body baton encoded.  Decode it
                               strictly, demand a map with str keys and
                               that packing it again in the same order
                               gives the same bytes (baton's encoding is
                               the canonical, smallest one), then write
                               OUT: the same map with its keys reversed
                               and an unknown nested key added.
  xmsgpack.py build NAME OUT   write OUT: a body built here, from the
                               table below, for baton to decode.
"""
import sys

try:
    import msgpack
except ImportError:
    msgpack = None

# Bodies built independently of baton's encoder.  test_xmsgpack.c holds
# the same values and checks what baton decodes.
BUILT = {
    "HELLO": {
        "capabilities": ["seal-v2", "", "\u03bb"],
        "proto_max": 1,
        "proto_min": 1,
        "build_id": "py-build \u2014 42",
        "pid": 4294967295,
        "role": "incumbent",
    },
    "NS_REQUEST": {
        "uenv_image": None,
        "namespaces": ["mount", "pid"],
        "allocation_id": "py.alloc-7",
    },
    "SEAL_COMPLETE": {
        "state_digest": bytes(range(32)),
        "state_seq": 2 ** 64 - 1,
        "handoff_id": "123e4567-e89b-12d3-a456-426614174000",
        "x-unknown": {"a": [1, -2, 3.5, None, b"\x00"]},
    },
    "HEARTBEAT": {"ts_ms": 0},
    "CTL_UPGRADE_RESULT": {
        "handoff_id": "123e4567-e89b-12d3-a456-426614174000",
        "committed": False,
        "abort_reason": "successor not ready",
        "old_pid": 1, "new_pid": 65536, "hello_ms": 127, "spawn_ms": 128,
        "drain_ms": 255, "seal_ms": 256, "begin_ms": 65535,
        "commit_ms": 65536, "total_ms": 2 ** 32,
    },
}


def die(msg):
    sys.stderr.write("xmsgpack: %s\n" % msg)
    sys.exit(2)


def canon(src, dst):
    data = open(src, "rb").read()
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True,
                              use_list=True)
    except Exception as e:  # noqa: BLE001 - any decode error is a failure
        die("python cannot decode baton's body: %r" % e)
    if not isinstance(obj, dict):
        die("body is a %s, not a map" % type(obj).__name__)
    for k, v in obj.items():
        if not isinstance(k, str):
            die("key %r is not a string" % (k,))
        if not isinstance(v, (int, bool, str, bytes, list, type(None))):
            die("value of %s has type %s" % (k, type(v).__name__))
        # Arrays hold strings, or (NS_LIST_REPLY's allocations) maps
        # with string keys.
        if isinstance(v, list) and not all(
                isinstance(x, str) or (isinstance(x, dict) and
                                       all(isinstance(y, str) for y in x))
                for x in v):
            die("array %s holds a non-string" % k)
    again = msgpack.packb(obj, use_bin_type=True)
    if again != data:
        die("re-encoding differs: baton %s, python %s"
            % (data.hex(), again.hex()))
    rev = {"zz-future": {"n": [1, {"deep": None}], "f": 1.25}}
    for k in reversed(list(obj)):
        rev[k] = obj[k]
    open(dst, "wb").write(msgpack.packb(rev, use_bin_type=True))


def main(argv):
    if msgpack is None:
        die("python3-msgpack is not installed")
    if argv[1:2] == ["check"]:
        return 0
    if len(argv) == 4 and argv[1] == "canon":
        canon(argv[2], argv[3])
        return 0
    if len(argv) == 4 and argv[1] == "build":
        if argv[2] not in BUILT:
            die("no body for %s" % argv[2])
        open(argv[3], "wb").write(
            msgpack.packb(BUILT[argv[2]], use_bin_type=True))
        return 0
    die("usage: xmsgpack.py check | canon IN OUT | build NAME OUT")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
