# baton — one GNU Makefile.
#
#   make                 release binaries in build/
#   make SAN=1           ASan+UBSan binaries in build-san/
#   make CRASHPOINTS=1   crash points compiled in, in build-cp/
#   make check           deps, -Werror release build, unit tests under the
#                        sanitizers, integration tests, fuzz smoke, prove
#   make demo            deps, build, live upgrades under a temporary root
#   make fuzz            each decoder's libFuzzer target for FUZZ_SECONDS
#
# Sources are found by wildcard: a new module is a new .c/.h pair in its
# folder, a new test is tests/unit/test_*.c or tests/integration/it_*.c.

CC       ?= cc
PKGS     := libuv msgpack libseccomp uuid nettle
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

VERSION  := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wpointer-arith -Wwrite-strings -Wformat=2 -Werror
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

LIB_SRC   := $(wildcard proto/*.c common/*.c crashpoints/*.c)
AGENT_SRC := $(filter-out successor/main.c,$(wildcard successor/*.c))
SUP_SRC   := $(filter-out supervisor/main.c supervisor/batonctl.c,$(wildcard supervisor/*.c))
TESTLIB_SRC := $(wildcard tests/lib/*.c)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
IT_SRC    := $(wildcard tests/integration/it_*.c)
TOOL_SRC  := $(wildcard tools/*.c)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))
LIB   := $(B)/libbaton.a
LIBAG := $(B)/libagent.a
LIBSV := $(B)/libsupervisor.a
LIBT  := $(B)/libtest.a
BINS  := $(B)/baton-supervisor $(B)/baton-agent $(B)/batonctl \
         $(patsubst tools/%.c,$(B)/%,$(TOOL_SRC))
TESTS := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC)) \
         $(patsubst tests/integration/%.c,$(B)/tests/%,$(IT_SRC))

.PHONY: all bins tests check unit integration demo fuzz fuzz-build deps \
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
$(LIBT): $(call obj,$(TESTLIB_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(B)/baton-agent: $(call obj,successor/main.c) $(LIBAG) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/baton-supervisor: $(call obj,supervisor/main.c) $(LIBSV) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/batonctl: $(call obj,supervisor/batonctl.c) $(LIBSV) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/%: $(B)/obj/tools/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/tests/%: $(B)/obj/tests/unit/%.o $(LIBT) $(LIBSV) $(LIBAG) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/tests/%: $(B)/obj/tests/integration/%.o $(LIBT) $(LIBSV) $(LIBAG) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

# The version header is rewritten only when `git describe` changes.
$(shell mkdir -p $(B)/gen && \
  echo '#define BATON_VERSION "$(VERSION)"' > $(B)/gen/version-gen.h.tmp && \
  (cmp -s $(B)/gen/version-gen.h.tmp $(B)/gen/version-gen.h || \
   mv $(B)/gen/version-gen.h.tmp $(B)/gen/version-gen.h); \
  rm -f $(B)/gen/version-gen.h.tmp)

deps:
	@scripts/deps.sh

# The test build: sanitizers and crash points together.
TB := build-san-cp
check: deps
	$(MAKE) bins
	$(MAKE) SAN=1 CRASHPOINTS=1 bins tests
	$(MAKE) fuzz-build
	@scripts/check.sh $(TB) $(B)

unit: deps
	$(MAKE) SAN=1 CRASHPOINTS=1 bins tests
	prove -e '' $(TB)/tests/test_*

integration: deps
	$(MAKE) SAN=1 CRASHPOINTS=1 bins tests
	prove -e '' $(TB)/tests/it_*

# Every crash point ROUNDS times (default 3: each point under each of the
# three load shapes); the stall matrix stops the process there instead.
ROUNDS ?= 3
.PHONY: stall-matrix
crash-matrix: deps
	$(MAKE) SAN=1 CRASHPOINTS=1 bins tests
	BATON_MATRIX_ROUNDS=$(ROUNDS) prove -v -e '' $(TB)/tests/it_crash_matrix
stall-matrix: deps
	$(MAKE) SAN=1 CRASHPOINTS=1 bins tests
	BATON_STALL_FULL=1 BATON_STALL_ROUNDS=$(ROUNDS) \
	  prove -v -e '' $(TB)/tests/it_stall_matrix

# Random SIGKILLs during back-to-back upgrades under load: make chaos N=50
N ?= 20
chaos: deps
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
fuzz-build:
	@mkdir -p $(FB)
	@for f in $(FUZZ_SRC); do \
	  n=$$(basename $$f .c); \
	  clang $(CPPFLAGS) -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined \
	    -o $(FB)/$$n $$f $(LIB_SRC) $(LDLIBS) || exit 1; \
	done
fuzz: deps fuzz-build
	@scripts/fuzz.sh $(FB) $(FUZZ_SECONDS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-san build-cp build-san-cp build-fuzz
