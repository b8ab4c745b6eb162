# meshgate: one Makefile builds everything (BPF objects, skeletons, agent, tools,
# tests, benchmarks). Out-of-tree into $(BUILD); `make V=1` shows the commands.
#
#   make            build all
#   make deps       install every Debian package the build, tests, demo and benchmarks need
#   make test       deps + build + every test under ctest (privileged ones included)
#   make demo       deps + build + the network-namespace demo
#   make bench      build + every benchmark, JSON in $(BUILD)/bench/
#   make install    PREFIX=/usr/local DESTDIR=
.DELETE_ON_ERROR:
.SUFFIXES:
# Keep intermediate files (.bpf.o between .bpf.c and .skel.h; objects).
.SECONDARY:

BUILD ?= build
PREFIX ?= /usr/local
DESTDIR ?=

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)"
endif

CLANG_BPF ?= clang-19
CLANG_FUZZ ?= clang++-19
BPFTOOL ?= bpftool
CXX ?= g++
ARCH := $(shell uname -m | sed 's/x86_64/x86/; s/aarch64/arm64/')
# clang -target bpf does not search the multiarch dir; add clang's own system dirs
# after ours (the libbpf-bootstrap recipe).
CLANG_BPF_SYS_INCLUDES = $(shell $(CLANG_BPF) -v -E - </dev/null 2>&1 \
	| sed -n '/<...> search starts here:/,/End of search list./{ s| \(/.*\)|-idirafter \1|p }')

BPF_CFLAGS := -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_$(ARCH) \
	-Iinclude -Ibpf $(CLANG_BPF_SYS_INCLUDES)
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++2b -Wall -Wextra -Wno-missing-field-initializers -MMD -MP \
	-Iinclude -I. -I$(BUILD)/skel
LDLIBS := -lbpf -lelf -lz -lcrypto -lnghttp2 -lre2 -lpthread
# libFuzzer targets: clang with libFuzzer, ASan and UBSan (libclang-rt-19-dev).
FUZZ_CXXFLAGS := -O1 -g -std=c++2b -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -Iinclude -I.

# ---- sources -------------------------------------------------------------------------
BPF_SRCS := $(wildcard bpf/*.bpf.c) $(wildcard tests/progs/*.bpf.c)
BPF_OBJS := $(patsubst %.bpf.c,$(BUILD)/bpf/%.bpf.o,$(notdir $(BPF_SRCS)))
SKELS := $(patsubst %.bpf.c,$(BUILD)/skel/%.skel.h,$(notdir $(BPF_SRCS)))
BPF_HDRS := $(wildcard bpf/lib/*.h) $(wildcard include/meshgate/abi/*.h)

AGENT_LIB_SRCS := $(filter-out agent/main.cc,$(wildcard agent/*.cc)) $(wildcard common/*.cc)
AGENT_LIB := $(BUILD)/lib/libmeshgate.a
# meshgate-proxy: proxy/<area>/*.cc is the library, proxy/main.cc the binary.
PROXY_LIB_SRCS := $(filter-out %/main.cc,$(wildcard proxy/*/*.cc))
PROXY_LIB := $(BUILD)/lib/libmgproxy.a
CTL_SRCS := $(wildcard tools/meshgatectl/*.cc)
TESTLIB_SRCS := $(wildcard tests/lib/*.cc)
TESTLIB := $(BUILD)/lib/libmgtest.a

TEST_SRCS := $(wildcard tests/unit/*_test.cc tests/bpf/*_test.cc tests/integration/*_test.cc)
TEST_BINS := $(patsubst %.cc,$(BUILD)/%,$(TEST_SRCS))
BENCH_SRCS := $(wildcard tests/bench/*_bench.cc)
BENCH_BINS := $(patsubst %.cc,$(BUILD)/%,$(BENCH_SRCS))
FUZZ_SRCS := $(wildcard tests/fuzz/*_fuzz.cc)
# The fuzzers are built from the parsers' own sources, instrumented; nothing else.
FUZZ_LIB_SRCS := $(wildcard proxy/http1/*.cc)
FUZZ_BINS := $(patsubst %.cc,$(BUILD)/%,$(FUZZ_SRCS))

BINS := $(BUILD)/bin/meshgate-agent $(BUILD)/bin/meshgatectl $(BUILD)/bin/meshgate-demo \
	$(BUILD)/bin/meshgate-quic-server $(BUILD)/bin/meshgate-proxy
# The example QUIC server (tools/quic-server): ngtcp2 + nghttp3 over GnuTLS.
QUIC_SERVER_LDLIBS := -lngtcp2_crypto_gnutls -lngtcp2 -lnghttp3 -lgnutls

# Debian 12 packages for build, tests, demo and benchmarks.
DEB_PACKAGES := make g++ cmake clang-19 llvm-19 libbpf-dev bpftool libelf-dev zlib1g-dev \
	linux-libc-dev libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev liburing-dev \
	libssl-dev libnghttp2-dev libre2-dev libjemalloc-dev nghttp2-client nghttp2-server python3-h2 python3-grpcio iproute2 ethtool iputils-ping procps curl python3 python3-scapy \
	libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev libgnutls28-dev ngtcp2-client openssl \
	libclang-rt-19-dev nginx-light haproxy wrk
# Packages whose install starts a system service on port 80 and friends; tests and
# benchmarks start their own instances in namespaces, so deps stops and disables these.
DEB_SERVICES := nginx haproxy

# `make test` and `make demo` build with one job per CPU (JOBS=1 for a serial build).
JOBS ?= $(shell nproc)

.PHONY: all deps test demo bench install clean fmt
all: $(BINS) $(TEST_BINS) $(BENCH_BINS) $(FUZZ_BINS) $(BUILD)/asan/bin/meshgate-proxy

# ---- BPF: .bpf.c -> .bpf.o -> .skel.h ----------------------------------------------------
vpath %.bpf.c bpf tests/progs

$(BUILD)/bpf/%.bpf.o: %.bpf.c $(BPF_HDRS) | $(BUILD)/bpf
	$(call msg,BPF,$@)
	$(Q)$(CLANG_BPF) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/skel/%.skel.h: $(BUILD)/bpf/%.bpf.o | $(BUILD)/skel
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*)_bpf > $@

# ---- C++ ---------------------------------------------------------------------------------
$(BUILD)/obj/%.o: %.cc | $(SKELS)
	$(call msg,CXX,$@)
	@mkdir -p $(@D)
	$(Q)$(CXX) $(CXXFLAGS) -c $< -o $@

$(AGENT_LIB): $(patsubst %.cc,$(BUILD)/obj/%.o,$(AGENT_LIB_SRCS))
	$(call msg,AR,$@)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

$(PROXY_LIB): $(patsubst %.cc,$(BUILD)/obj/%.o,$(PROXY_LIB_SRCS))
	$(call msg,AR,$@)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

# The proxy allocates per request and per HTTP/2 stream (nghttp2 too); jemalloc's per-thread
# caches cost 3-11% less CPU per request than glibc's malloc (docs/BENCHMARKS.md). Only this
# binary: the sanitizer build and the tests keep the malloc their sanitizers replace.
$(BUILD)/bin/meshgate-proxy: $(BUILD)/obj/proxy/main.o $(PROXY_LIB) $(AGENT_LIB)
	$(call msg,LINK,$@)
	@mkdir -p $(@D)
	$(Q)$(CXX) $(CXXFLAGS) $^ -o $@ $(LDLIBS) -ljemalloc

$(TESTLIB): $(patsubst %.cc,$(BUILD)/obj/%.o,$(TESTLIB_SRCS))
	$(call msg,AR,$@)
	@mkdir -p $(@D)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/bin/meshgate-agent: $(BUILD)/obj/agent/main.o $(AGENT_LIB)
	$(call msg,LINK,$@)
	@mkdir -p $(@D)
	$(Q)$(CXX) $(CXXFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/bin/meshgatectl: $(patsubst %.cc,$(BUILD)/obj/%.o,$(CTL_SRCS)) $(AGENT_LIB)
	$(call msg,LINK,$@)
	@mkdir -p $(@D)
	$(Q)$(CXX) $(CXXFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/bin/meshgate-quic-server: $(BUILD)/obj/tools/quic-server/main.o $(AGENT_LIB)
	$(call msg,LINK,$@)
	@mkdir -p $(@D)
	$(Q)$(CXX) $(CXXFLAGS) $^ -o $@ $(QUIC_SERVER_LDLIBS) $(LDLIBS)

$(BUILD)/bin/meshgate-demo: $(BUILD)/obj/tools/demo/main.o $(TESTLIB) $(AGENT_LIB)
	$(call msg,LINK,$@)
	@mkdir -p $(@D)
	$(Q)$(CXX) $(CXXFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TESTLIB) $(PROXY_LIB) $(AGENT_LIB)
	$(call msg,LINK,$@)
	@mkdir -p $(@D)
	$(Q)$(CXX) $(CXXFLAGS) $^ -o $@ -lgmock -lgtest_main -lgtest $(LDLIBS)

# Benchmarks have their own main (tests/lib/bench.h writes the JSON report).
$(BUILD)/tests/bench/%: $(BUILD)/obj/tests/bench/%.o $(TESTLIB) $(PROXY_LIB) $(AGENT_LIB)
	$(call msg,LINK,$@)
	@mkdir -p $(@D)
	$(Q)$(CXX) $(CXXFLAGS) $^ -o $@ $(LDLIBS)
# The epoll-vs-io_uring benchmark (issue 3) is the only user of liburing.
$(BUILD)/tests/bench/event_loop_bench: LDLIBS += -luring

# meshgate-proxy built with AddressSanitizer and UndefinedBehaviorSanitizer: `make test` runs
# the proxy's integration suites against it too (MESHGATE_BIN_DIR), so a use-after-free or a
# leak in a session's lifetime fails a test instead of hiding in a lucky heap.
ASAN_FLAGS := -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
	-Wno-maybe-uninitialized  # GCC 12 false positives in <regex> under ASan
ASAN_PROXY_SRCS := proxy/main.cc $(PROXY_LIB_SRCS) $(wildcard common/*.cc)
$(BUILD)/asan/obj/%.o: %.cc | $(SKELS)
	$(call msg,CXX-ASAN,$@)
	@mkdir -p $(@D)
	$(Q)$(CXX) $(CXXFLAGS) $(ASAN_FLAGS) -c $< -o $@
$(BUILD)/asan/bin/meshgate-proxy: $(patsubst %.cc,$(BUILD)/asan/obj/%.o,$(ASAN_PROXY_SRCS)) $(AGENT_LIB)
	$(call msg,LINK,$@)
	@mkdir -p $(@D)
	$(Q)$(CXX) $(CXXFLAGS) $(ASAN_FLAGS) $^ -o $@ $(LDLIBS)

# Fuzz targets build with clang straight from the sources they fuzz (sanitizers throughout):
# FUZZ_LIB_SRCS (the HTTP/1.1 parser) unless the target names its own.
CONFIG_FUZZ_SRCS := agent/config.cc agent/net_addr.cc agent/quic_lb.cc common/json_reader.cc \
	proxy/routing/config.cc proxy/routing/router.cc proxy/net/socket.cc
$(BUILD)/tests/fuzz/config_fuzz: FUZZ_LIB_SRCS := $(CONFIG_FUZZ_SRCS)
$(BUILD)/tests/fuzz/config_fuzz: FUZZ_LDLIBS := -lcrypto -lre2
$(BUILD)/tests/fuzz/config_fuzz: $(CONFIG_FUZZ_SRCS) \
	$(wildcard agent/*.h common/*.h proxy/routing/*.h include/meshgate/*.h)
# The client side of meshgate-proxy whole: every proxy source, and what they use.
SESSION_FUZZ_SRCS := $(PROXY_LIB_SRCS) agent/maglev.cc common/json_reader.cc
$(BUILD)/tests/fuzz/http_session_fuzz: FUZZ_LIB_SRCS := $(SESSION_FUZZ_SRCS)
$(BUILD)/tests/fuzz/http_session_fuzz: FUZZ_LDLIBS := -lnghttp2 -lre2 -lcrypto -lpthread
$(BUILD)/tests/fuzz/http_session_fuzz: $(SESSION_FUZZ_SRCS) \
	$(wildcard proxy/*/*.h agent/maglev.h common/*.h)
$(BUILD)/tests/fuzz/%: tests/fuzz/%.cc $(FUZZ_LIB_SRCS) $(wildcard proxy/http1/*.h tests/fuzz/*.h)
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG_FUZZ) $(FUZZ_CXXFLAGS) $< $(FUZZ_LIB_SRCS) -o $@ $(FUZZ_LDLIBS)

$(BUILD)/bpf $(BUILD)/skel:
	@mkdir -p $@

-include $(shell find $(BUILD)/obj $(BUILD)/asan/obj -name '*.d' 2>/dev/null)

# ---- set-up, tests, demo, benchmarks -----------------------------------------------------
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing:" $$missing; \
		if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root to install packages" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing || exit 1; \
		for svc in $(DEB_SERVICES); do \
			if command -v systemctl >/dev/null && systemctl is-enabled $$svc >/dev/null 2>&1; then \
				if systemctl disable --now $$svc >/dev/null 2>&1; then \
					echo "make deps: stopped and disabled the $$svc service"; \
				elif ! systemctl is-enabled $$svc >/dev/null 2>&1; then \
					echo "make deps: disabled the $$svc service (no running systemd: nothing to stop)"; \
				else \
					echo "make deps: warning: could not disable the $$svc service" >&2; \
				fi; \
			fi; \
		done; \
	else echo "make deps: all $(words $(DEB_PACKAGES)) packages present"; fi

# Tests run under ctest from a generated CTestTestfile.cmake. A skipped test fails the
# run unless MESHGATE_ALLOW_SKIP=1 (developer machines without root).
test: deps
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) all
	$(Q)scripts/gen-ctest.sh $(BUILD) $(patsubst $(BUILD)/%,%,$(TEST_BINS) $(FUZZ_BINS)) > $(BUILD)/CTestTestfile.cmake
	$(Q)cd $(BUILD) && ctest --output-on-failure --timeout 600

demo: deps
	$(Q)$(MAKE) --no-print-directory -j$(JOBS) all
	$(Q)$(BUILD)/bin/meshgate-demo $(DEMO_ARGS)

# Each benchmark is pinned to the last CPU (the load generator, where there is one, to the
# other) and measures its baseline in the same run; JSON lands in $(BUILD)/bench/.
BENCH_CPU ?= $(shell echo $$(( $$(nproc) - 1 )))
bench: all
	@mkdir -p $(BUILD)/bench
	$(Q)set -e; for b in $(BENCH_BINS); do taskset -c $(BENCH_CPU) $$b --out $(BUILD)/bench; done

install: $(BUILD)/bin/meshgate-agent $(BUILD)/bin/meshgatectl $(BUILD)/bin/meshgate-proxy
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/meshgate
	install -m 0755 $(BUILD)/bin/meshgate-agent $(BUILD)/bin/meshgatectl $(BUILD)/bin/meshgate-proxy \
		$(DESTDIR)$(PREFIX)/bin/
	install -m 0644 deploy/meshgate.json deploy/proxy.json $(DESTDIR)$(PREFIX)/share/meshgate/
	install -d $(DESTDIR)/etc/meshgate $(DESTDIR)/etc/systemd/system
	set -e; for u in meshgate-agent meshgate-proxy; do \
		sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' deploy/$$u.service > $(DESTDIR)/etc/systemd/system/$$u.service; \
		chmod 0644 $(DESTDIR)/etc/systemd/system/$$u.service; \
	done

fmt:
	clang-format -i $(wildcard agent/*.cc agent/*.h common/*.cc common/*.h proxy/*.cc \
		proxy/*/*.cc proxy/*/*.h tools/*/*.cc tests/*/*.cc tests/*/*.h)

clean:
	rm -rf $(BUILD)
