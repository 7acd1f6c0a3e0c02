# baton — one GNU Makefile.
#
#   make                 release binaries in build/
#   make SAN=1           ASan+UBSan binaries in build-san/
#   make CRASHPOINTS=1   crash points compiled in, in build-cp/
#   make check           test deps, -Werror release build, unit tests under the
#                        sanitizers, integration tests, fuzz smoke, prove
#   make demo            build deps, build, live upgrades under a temporary root
#   make fuzz            each decoder's libFuzzer target for FUZZ_SECONDS
#
# Sources are found by wildcard: a new module is a new .c/.h pair in its
# folder, a new test is tests/unit/test_*.c or tests/integration/it_*.c.

CC       ?= cc
PKGS     := libuv msgpack libseccomp uuid nettle jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# VERSION (the file) without git; +g<describe> added inside a checkout.
VERSION  ?= $(shell cat VERSION 2>/dev/null || echo 0)$(shell git describe --always --dirty 2>/dev/null | sed 's/^/+g/')
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wwrite-strings -Wformat=2
CFLAGS   ?= -O2 -g
CPPFLAGS += -D_GNU_SOURCE -I. -I$(B)/gen $(PKG_CFLAGS)
ALL_CFLAGS = -std=gnu11 $(WARN) $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS   += $(PKG_LIBS)

B := build
ifeq ($(SAN),1)
  B := $(B)-san
  EXTRA_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer \
                  -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined
endif
ifeq ($(CRASHPOINTS),1)
  B := $(B)-cp
  CPPFLAGS += -DBATON_CRASHPOINTS=1
endif

# Layers (scripts/check-layers.sh): crashpoints < common < proto <
# transport < client < programs (supervisor, successor, ctl, tools).
LIB_SRC   := $(wildcard crashpoints/*.c common/*.c proto/*.c transport/*.c \
             client/*.c)
AGENT_SRC := $(filter-out successor/main.c,$(wildcard successor/*.c))
SUP_SRC   := $(filter-out supervisor/main.c,$(wildcard supervisor/*.c))
CTL_SRC   := $(filter-out ctl/batonctl.c,$(wildcard ctl/*.c))
TESTLIB_SRC := $(wildcard tests/lib/*.c)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
IT_SRC    := $(wildcard tests/integration/it_*.c)
TOOL_SRC  := $(wildcard tools/*.c)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))
LIB   := $(B)/libbaton.a
LIBAG := $(B)/libagent.a
LIBSV := $(B)/libsupervisor.a
LIBCTL := $(B)/libctl.a
LIBT  := $(B)/libtest.a
BINS  := $(B)/baton-supervisor $(B)/baton-agent $(B)/batonctl \
         $(patsubst tools/%.c,$(B)/%,$(TOOL_SRC))
TESTS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC)) \
         $(patsubst tests/integration/%.c,$(B)/tests/%,$(IT_SRC))

.PHONY: all bins tests check unit integration demo fuzz fuzz-build deps deps-check \
        clean format bench crash-matrix chaos
.DEFAULT_GOAL := all

all: bins
bins: $(BINS)
tests: $(TESTS)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(call obj,$(LIB_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(LIBAG): $(call obj,$(AGENT_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(LIBSV): $(call obj,$(SUP_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(LIBCTL): $(call obj,$(CTL_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
$(LIBT): $(call obj,$(TESTLIB_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/baton-agent: $(call obj,successor/main.c) $(LIBAG) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/baton-supervisor: $(call obj,supervisor/main.c) $(LIBSV) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/batonctl: $(call obj,ctl/batonctl.c) $(LIBCTL) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/%: $(B)/obj/tools/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(LIBT) $(LIBSV) $(LIBCTL) $(LIBAG) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/tests/%: $(B)/obj/tests/integration/%.o $(LIBT) $(LIBSV) $(LIBCTL) $(LIBAG) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

-include $(shell find $(B)/obj $(B)/pic -name '*.d' 2>/dev/null)

# The version header is rewritten only when `git describe` changes.
$(shell mkdir -p $(B)/gen && \
  echo '#define BATON_VERSION "$(VERSION)"' > $(B)/gen/version-gen.h.tmp && \
  (cmp -s $(B)/gen/version-gen.h.tmp $(B)/gen/version-gen.h || \
   mv $(B)/gen/version-gen.h.tmp $(B)/gen/version-gen.h); \
  rm -f $(B)/gen/version-gen.h.tmp)

# deps: what building needs (make demo); deps-check: also the tests' tools.
deps:
	@scripts/deps.sh
deps-check:
	@scripts/deps.sh --check

# The test build: sanitizers and crash points together.
TB := build-san-cp
check: deps-check
	$(MAKE) bins
	$(MAKE) SAN=1 CRASHPOINTS=1 bins tests
	$(MAKE) fuzz-build
	@scripts/check.sh $(TB) $(B)

unit: deps-check
	$(MAKE) SAN=1 CRASHPOINTS=1 bins tests
	prove -e '' $(TB)/tests/test_*

integration: deps-check
	$(MAKE) SAN=1 CRASHPOINTS=1 bins tests
	prove -e '' $(TB)/tests/it_*

# Every crash point ROUNDS times (default 3: each point under each of the
# three load shapes); the stall matrix stops the process there instead.
ROUNDS ?= 3
.PHONY: stall-matrix
crash-matrix: deps-check
	$(MAKE) SAN=1 CRASHPOINTS=1 bins tests
	BATON_MATRIX_ROUNDS=$(ROUNDS) prove -v -e '' $(TB)/tests/it_crash_matrix
stall-matrix: deps-check
	$(MAKE) SAN=1 CRASHPOINTS=1 bins tests
	BATON_STALL_FULL=1 BATON_STALL_ROUNDS=$(ROUNDS) \
	  prove -v -e '' $(TB)/tests/it_stall_matrix

# Connections moved through back-to-back upgrades: make conn-move UPGRADES=100
UPGRADES ?= 100
.PHONY: conn-move
conn-move: deps-check
	$(MAKE) SAN=1 CRASHPOINTS=1 bins tests
	BATON_MOVE_UPGRADES=$(UPGRADES) \
	  TAP_ONLY=clients_and_subscribers_stay_connected_through_upgrades \
	  prove -v -e '' $(TB)/tests/it_connmove

# Random SIGKILLs during back-to-back upgrades under load: make chaos N=50
N ?= 20
chaos: deps-check
	$(MAKE) SAN=1 CRASHPOINTS=1 bins tests
	CHAOS_N=$(N) prove -v -e '' $(TB)/tests/it_chaos

demo: deps
	$(MAKE) bins
	@scripts/demo.sh $(B)

# Benchmarks (never part of check): K= upgrades, results in $(B)/bench/.
# Both install gnuplot-nox and the peers (scripts/deps.sh --peers).
.PHONY: bench-peers
bench: deps
	@scripts/deps.sh --peers
	$(MAKE) bins
	$(MAKE) CRASHPOINTS=1 $(B)-cp/tests/test_nsserver
	@scripts/bench.sh $(B)
bench-peers: deps
	@scripts/deps.sh --peers
	$(MAKE) bins
	@scripts/bench-peers.sh $(B)

# libFuzzer: one target per decoder, built with clang.
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FB := build-fuzz
FUZZ_SECONDS ?= 20
FUZZ_LIB_SRC := $(filter-out %/log.c,$(LIB_SRC))
# The agent's decoders that depend on nothing else of it (fuzz_nsstate).
FUZZ_AGENT_SRC := successor/nsstate.c
fuzz-build:
	@mkdir -p $(FB)
	@for f in $(FUZZ_SRC); do \
	  n=$$(basename $$f .c); \
	  clang $(CPPFLAGS) -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined \
	    -o $(FB)/$$n $$f $(LIB_SRC) $(FUZZ_AGENT_SRC) $(LDLIBS) || exit 1; \
	done
fuzz: deps-check fuzz-build
	@scripts/fuzz.sh $(FB) $(FUZZ_SECONDS)

# ---- Install, the shared consumer library, packages (issue 15) ----
# make install [DESTDIR=] [PREFIX=/usr/local] [BINDIR=] [SBINDIR=] [LIBDIR=]
#   [INCLUDEDIR=] [MANDIR=] [SYSTEMDUNITDIR=]: daemons in SBINDIR, batonctl
#   in BINDIR, libbaton-nsclient.so.0 + <baton/nsclient.h> +
#   baton-nsclient.pc, man pages, systemd units.  Release builds take
#   CFLAGS/CPPFLAGS/LDFLAGS from the environment (dpkg-buildflags);
#   -Werror only with WERROR=1, which the check targets set.
#   make packages    the .debs, installed in a scratch root and run
WERROR ?= 0
ifeq ($(WERROR),1)
  WARN += -Werror
endif
check unit integration crash-matrix chaos fuzz-build: export WERROR := 1
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SONAME  := libbaton-nsclient.so.0
SOFILE  := $(SONAME).1.0
SOLIB   := $(B)/$(SOFILE)
SOLIB_SRC := client/nsclient.c common/log.c common/clock.c common/paths.c \
             common/nsvocab.c common/nsmake.c transport/fdpass.c \
             transport/wire.c proto/msg.c proto/msgdecode.c \
             proto/msgcheck.c proto/frame.c
UNITS   := $(wildcard systemd/*.service systemd/*.socket)
MANS    := $(wildcard man/*.8)
SUBST    = sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
             -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@LIBDIR@|$(LIBDIR)|g' \
             -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g'
.PHONY: lib install packages
all: lib
lib: $(SOLIB)
$(B)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -MMD -MP -c -o $@ $<
$(SOLIB): $(patsubst %.c,$(B)/pic/%.o,$(SOLIB_SRC)) client/nsclient.map
	$(CC) $(LDFLAGS) -shared -Wl,-soname,$(SONAME) \
	  -Wl,--version-script=client/nsclient.map -Wl,-z,defs -o $@ \
	  $(filter %.o,$^) $(shell pkg-config --libs msgpack 2>/dev/null)
	ln -sf $(SOFILE) $(B)/$(SONAME)
	ln -sf $(SONAME) $(B)/libbaton-nsclient.so
install: bins lib
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) \
	  $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR)/baton \
	  $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 0755 $(B)/baton-supervisor $(B)/baton-agent $(DESTDIR)$(SBINDIR)/
	install -m 0755 $(B)/batonctl $(DESTDIR)$(BINDIR)/
	install -m 0644 $(SOLIB) $(DESTDIR)$(LIBDIR)/$(SOFILE)
	ln -sf $(SOFILE) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libbaton-nsclient.so
	install -m 0644 client/nsclient.h $(DESTDIR)$(INCLUDEDIR)/baton/nsclient.h
	$(SUBST) client/baton-nsclient.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/baton-nsclient.pc
	install -m 0644 $(MANS) $(DESTDIR)$(MANDIR)/man8/
	for u in $(UNITS); do \
	  $(SUBST) $$u > $(DESTDIR)$(SYSTEMDUNITDIR)/$$(basename $$u) || exit 1; \
	done
packages: deps
	@scripts/check-packages.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san build-cp build-san-cp build-fuzz
