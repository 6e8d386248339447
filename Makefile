# lumen-sniff: every target does its own set-up, so `make run` and `make test`
# work on a fresh Debian 12 machine (as root) with only git and make.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PY      := /usr/bin/python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.stamp-$(shell cat pyproject.toml | md5sum | cut -c1-12)
# Each stamp names its package list: adding a package makes setup install it.
APT_STAMP = /var/lib/lumen-sniff-setup/apt-stamp-$(shell echo $(APT_PACKAGES) | md5sum | cut -c1-12)
APT_TEST_STAMP = /var/lib/lumen-sniff-setup/apt-test-stamp-$(shell echo $(APT_TEST_PACKAGES) | md5sum | cut -c1-12)
TEST_STAMP = $(VENV)/.test-stamp-$(shell cat pyproject.toml | md5sum | cut -c1-12)
KREL    := $(shell uname -r)

# What the daemon needs on a production host (`make run`, `make setup`): bcc
# (python3-bpfcc is not on PyPI), kernel headers for bcc to compile against,
# Python and its venv, libpcap for `--capture pcap`. The dashboard needs no node:
# web/build.py (system Python) fetches uPlot as the npm lockfile pins it.
APT_PACKAGES := python3 python3-venv python3-bpfcc linux-headers-amd64 \
	ca-certificates libpcap0.8
# Only the tests, benchmarks and key-log replay (`make setup-test`, `make test`):
# tshark decrypts key-logged captures, the rest are the real clients and tools the
# integration tests drive (gcc builds C clients, with libssl-dev bench/loadgen/loadgen.c,
# the throughput phase's client; golang-go the Go client; gnutls-bin
# and python3-pycurl drive GnuTLS; default-jdk-headless the Java client; python3-seccomp
# confines the TLS echo server; prometheus, redis-server: the fleet tests; chromium: the
# dashboard tests' browser; nodejs: the npm agents).
APT_TEST_PACKAGES := nodejs python3-dev bpfcc-tools tshark python3-seccomp curl gcc libssl-dev \
	iproute2 procps golang-go gnutls-bin python3-pycurl default-jdk-headless util-linux \
	prometheus redis-server chromium

WEB_SRC := $(shell find web/src -type f 2>/dev/null)

.PHONY: help setup setup-test npm web apt apt-test headers venv venv-test warm run test test-unit lint bench fixtures install-service clean

help:
	@echo "make run      start the daemon in the foreground (default db, loopback API)"
	@echo "make test     run the whole test suite (unit + eBPF integration)"
	@echo "make setup    install what the daemon needs: Debian packages, headers link, .venv;"
	@echo "              then compile the BPF programs into the object cache (lumen-sniff warm)"
	@echo "make setup-test  also install what tests, benchmarks and replay --keylog need"
	@echo "make bench    run the benchmarks in bench/"

setup: apt headers venv web warm

# The first start after an install or a kernel change would compile the BPF programs
# (ready in ~2 s instead of ~0.7 s on the bench machine): compile them now, for the default config's
# settings. Idempotent (a warm cache costs ~0.5 s), and it fails open: where eBPF is
# unavailable it says so and setup goes on.
warm: headers venv
	@$(VENV)/bin/lumen-sniff warm || echo "warning: lumen-sniff warm failed; the daemon will compile at its first start"

# The dashboard: the chart library is pinned by the npm lockfile (web/package-lock.json);
# web/build.py (standard library only, no node) downloads that tarball, checks its
# integrity, and writes our own page and modules with uPlot's two files into web/dist
# (gitignored), which the daemon serves at /. Nothing third-party lives in the repository.
web: web/dist/index.html
web/dist/index.html: web/build.py web/package.json web/package-lock.json $(WEB_SRC) | apt
	$(PY) web/build.py

apt: $(APT_STAMP)
$(APT_STAMP):
	@$(call apt_install,$(APT_PACKAGES))
	@mkdir -p $(dir $(APT_STAMP)) && touch $(APT_STAMP)

apt-test: $(APT_TEST_STAMP)
$(APT_TEST_STAMP): | apt
	@$(call apt_install,$(APT_TEST_PACKAGES))
	@mkdir -p $(dir $(APT_TEST_STAMP)) && touch $(APT_TEST_STAMP)

# Install the Debian packages in $(1) that are not installed yet (none: no apt-get).
define apt_install
if [ "$$(id -u)" != 0 ]; then echo "make setup must run as root (apt-get, eBPF)"; exit 1; fi; \
missing=""; for p in $(1); do \
  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
  echo "installing Debian packages:$$missing"; \
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
fi
endef

# bcc compiles against /lib/modules/$(uname -r)/build. Where no package matches the
# running kernel (these VMs), link Debian's generic headers: a uprobe program only
# needs pt_regs and the helper definitions. A matching tree is never touched.
headers: apt
	@if [ -e /lib/modules/$(KREL)/build/include ]; then \
	  echo "kernel headers for $(KREL): present"; \
	else \
	  hdr=$$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n1); \
	  common=$$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -n1); \
	  if [ -z "$$hdr" ] || [ -z "$$common" ]; then echo "no kernel headers found under /usr/src"; exit 1; fi; \
	  mkdir -p /lib/modules/$(KREL); \
	  ln -sfn $$hdr /lib/modules/$(KREL)/build; ln -sfn $$common /lib/modules/$(KREL)/source; \
	  echo "kernel headers for $(KREL): none match; linked build -> $$hdr, source -> $$common"; \
	fi
	@# bcc detaches uprobes through tracefs; minimal systems do not mount it.
	@mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing || \
	  echo "warning: could not mount tracefs at /sys/kernel/tracing"

venv: $(STAMP)
$(STAMP): pyproject.toml | apt
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e .
	@# bcc comes from Debian, not PyPI: expose just that module.
	@site=$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  ln -sfn /usr/lib/python3/dist-packages/bcc $$site/bcc
	$(VPY) -c 'import bcc'
	@rm -f $(VENV)/.stamp-* && touch $@

# Defined before its first use: make expands a rule's prerequisites as it reads them.
AGENT_DIRS := $(patsubst %/package.json,%,$(wildcard tests/agents/*/package.json))
setup-test: setup apt-test venv-test npm $(AGENT_DIRS:%=%/node_modules/.lumen-stamp)

venv-test: $(TEST_STAMP)
$(TEST_STAMP): $(STAMP) | apt-test
	$(VPY) -m pip install -q -e '.[test,bench]'
	@# seccomp comes from Debian too (tests only).
	@site=$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  for so in /usr/lib/python3/dist-packages/seccomp*.so; do ln -sfn $$so $$site/$$(basename $$so); done
	$(VPY) -c 'import seccomp'
	@rm -f $(VENV)/.test-stamp-* && touch $@

# npm installs the agents (setup-test only). Debian's
# nodejs comes without npm, NodeSource's carries it (and conflicts with Debian's npm
# package): install the package only when no npm command exists.
# Real AI agents for the integration tests only (tests/agents/<name>, one pinned
# version per directory with its lockfile). --ignore-scripts: the tests run the
# platform binaries directly, and no install script may reach beyond the registry.
npm: apt-test
	@command -v npm >/dev/null || { \
	  echo "installing Debian package: npm"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm; }

tests/agents/%/node_modules/.lumen-stamp: tests/agents/%/package-lock.json tests/agents/%/package.json
	cd tests/agents/$* && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	@touch $@

run: setup
	$(VENV)/bin/lumen-sniff run $(ARGS)

# The whole suite. eBPF tests fail (never skip) under make test: LUMEN_REQUIRE_BPF=1.
test: setup-test
	LUMEN_REQUIRE_BPF=1 $(VENV)/bin/pytest $(PYTEST_ARGS)

test-unit: venv-test
	$(VENV)/bin/pytest tests/unit $(PYTEST_ARGS)

lint: venv-test
	$(VENV)/bin/ruff check lumen_sniff tests bench web/build.py
	$(VENV)/bin/mypy

bench: setup-test
	$(VPY) bench/pipeline.py
	$(VPY) bench/hotpath.py
	$(VPY) bench/store.py
	$(VPY) bench/replay.py
	$(VPY) bench/overhead.py
	$(VPY) bench/overhead_go.py
	$(VPY) bench/daemon.py
	$(VPY) bench/startup.py
	$(VPY) bench/discovery.py
	$(VPY) bench/otlp_export.py
	$(VPY) bench/dashboard.py

# Regenerate every recorded fixture with the real clients against the stand-in.
fixtures: setup-test
	$(VPY) -m tests.support.make_fixtures
	$(VPY) -m tests.support.make_pcaps

install-service: setup
	$(VENV)/bin/lumen-sniff install-service

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache tests/agents/*/node_modules web/node_modules web/dist
