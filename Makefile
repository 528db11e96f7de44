# nghttp2py developer entry points.  `make` builds the extension in place.
#
# config.mk (written by ./configure, which `make` runs when it is missing or
# older than configure) sets PYTHON, the interpreter .venv is made with, and
# NGHTTP2_CFLAGS / NGHTTP2_LIBS, which setup.py reads from the environment.
# The goals that only clean or install packages do not need it.
PYTHON ?= python3
ifneq ($(filter-out clean distclean deps test-deps,$(or $(MAKECMDGOALS),build)),)
include config.mk
endif
export NGHTTP2_CFLAGS NGHTTP2_LIBS

VENV = .venv
VPY = $(VENV)/bin/python
PORT ?= 8443
PYTEST_ARGS ?=
DISTDIR ?= dist
SETUP_BUILD = $(VPY) setup.py -q build_ext --inplace

.DEFAULT_GOAL := build
.PHONY: build debug deps test-deps venv dist test run bench bench-quick asan fuzz clean distclean

deps:
	@scripts/ensure-deps.sh $(PYTHON)

venv: $(VENV)/.stamp

$(VENV)/.stamp: requirements-dev.txt | deps
	test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

config.mk: configure | deps
	./configure PYTHON=$(PYTHON)

# setup.py decides what is stale (sources, depends, debug/release switch).
# The .pth file puts the checkout on the venv's path, so that scripts such as
# `python examples/hello.py` import the package built in place.
build: deps venv
	$(SETUP_BUILD)
	$(VPY) -c 'import os, sysconfig; open(os.path.join(sysconfig.get_path("purelib"), "nghttp2py-inplace.pth"), "w").write(os.getcwd() + "\n")'

debug: deps venv
	NGHTTP2PY_DEBUG=1 $(SETUP_BUILD)

# The sdist, then a wheel built from it in an isolated environment, the way pip
# builds either: build-system.requires and pkg-config, not .venv or config.mk.
# (A stale *.egg-info would add the files its SOURCES.txt lists to the sdist.)
dist: deps venv
	rm -rf $(DISTDIR) *.egg-info
	env -u NGHTTP2_CFLAGS -u NGHTTP2_LIBS $(VPY) -m build --outdir $(DISTDIR) .

# The suite runs on asyncio's loop, then (but for the slow memory proofs and what
# no loop changes: packaging, lint) on uvloop's. pytest exits 5 when it collects
# nothing; that is a failure too.
test-deps:
	@scripts/ensure-deps.sh --test $(PYTHON)

test: build test-deps
	@for loop in asyncio uvloop; do \
		if [ $$loop = uvloop ]; then set -- -m "not slow and not loop_independent"; \
		else set --; fi; \
		echo "== tests on the $$loop event loop"; \
		NGHTTP2PY_TEST_LOOP=$$loop $(VPY) -m pytest -n 2 -p no:cacheprovider "$$@" \
			$(PYTEST_ARGS) tests; rc=$$?; \
		if [ $$rc -eq 5 ]; then echo "make test: error: pytest collected no tests" >&2; fi; \
		[ $$rc -eq 0 ] || exit $$rc; \
	done

# The engine's tests against an AddressSanitizer build (in build/asan).
asan: build
	scripts/asan.sh $(VPY) $(ASAN_TESTS)

# Coverage-guided fuzzing (atheris) of one target of fuzz/targets.py, as long
# as asked: make fuzz FUZZ_TARGET=session FUZZ_SECONDS=3600.
FUZZ_TARGET ?= session
FUZZ_SECONDS ?= 600
fuzz: build
	PYTHONPATH=$(CURDIR):$(CURDIR)/fuzz $(VPY) fuzz/run.py $(FUZZ_TARGET) \
		-max_total_time=$(FUZZ_SECONDS)

run: build
	scripts/make-cert.sh .certs
	$(VPY) examples/site/server.py --bind :$(PORT) \
		--certfile .certs/server.crt --keyfile .certs/server.key

bench: build
	$(VPY) bench/run.py

bench-quick: build
	$(VPY) bench/run.py --quick

clean:
	rm -rf build dist *.egg-info config.mk src/*.c src/*.html nghttp2py/*.so
	find . -path ./$(VENV) -prune -o -path ./bench/.venv -prune -o \
		-name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .certs
