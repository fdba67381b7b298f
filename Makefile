# Host-side entry points: make demo, make test, make lint, make bench.
# Needs python3 (with venv) and make; installs the rest (see deps and venv).

SHELL := /bin/bash
.DEFAULT_GOAL := test
# deps must finish before venv (it may install python3-venv), and both before the tools run.
.NOTPARALLEL:

PYTHON ?= python3
VENV := .venv
VBIN := $(VENV)/bin
STAMP := $(VENV)/.requirements.stamp
PYTEST_ARGS ?=
# make test's pytest workers (tests/host/conftest.py groups the files that share state):
# three on a 2-core machine, as most of a test waits on a device or a broker
TEST_JOBS ?= 3
DEMO_ARGS ?=
BENCH_ARGS ?=
# make run: a script of your own on the unix port, with the library as .mpy (as on a board)
SCRIPT ?=
HEAP ?= 256k
RUN_DIR ?= build/run
APT_PACKAGES := mosquitto mosquitto-clients openssl socat

.PHONY: deps venv pico-deps interop-deps test interop lint demo bench board-test run clean \
	distclean

# System packages. Installs them with apt-get as root (or with passwordless sudo), else
# says what to install and stops. apt starts the system broker; tests start their own on
# free ports, so stop it again.
deps:
	@missing=""; \
	command -v mosquitto >/dev/null 2>&1 || test -x /usr/sbin/mosquitto || missing="$$missing mosquitto"; \
	command -v mosquitto_pub >/dev/null 2>&1 || missing="$$missing mosquitto-clients"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	command -v socat >/dev/null 2>&1 || missing="$$missing socat"; \
	if [ ! -x $(VBIN)/python ] && ! $(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1; then \
		missing="$$missing python3-venv"; \
	fi; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then sudo="sudo -n"; \
	else \
		echo "error: missing system packages:$$missing" >&2; \
		echo "Install them, then run make again:" >&2; \
		echo "    sudo apt-get update && sudo apt-get install -y$$missing" >&2; \
		echo "(or run make as root, which installs them itself)" >&2; \
		exit 1; \
	fi; \
	echo "Installing$$missing"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(APT_PACKAGES) \
		$$(case "$$missing" in *python3-venv*) echo python3-venv;; esac) || exit 1; \
	$$sudo systemctl stop mosquitto >/dev/null 2>&1 || true; \
	$$sudo systemctl disable mosquitto >/dev/null 2>&1 || true; \
	$$sudo service mosquitto stop >/dev/null 2>&1 || true

# The pinned host tools; reinstalled only when requirements.txt changes.
venv: $(STAMP)

$(STAMP): requirements.txt
	@test -x $(VBIN)/python || $(PYTHON) -m venv $(VENV) || { \
		echo "error: '$(PYTHON) -m venv' failed; install python3-venv (make deps does as root)" >&2; \
		exit 1; }
	$(VBIN)/python -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

# The emulated Pico's npm dependency (rp2040js, pinned in tools/pico/package-lock.json);
# nodejs and npm from apt when missing. The firmware is located, not installed: see
# tools/pico/picoboard.py (MQTTS_PICO_DIR); tests/host/test_pico.py skips without it.
pico-deps: tools/pico/node_modules/.stamp

tools/pico/node_modules/.stamp: tools/pico/package-lock.json
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo -n"; fi; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm || { \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm; } || exit 1; }
	npm ci --prefix tools/pico --no-audit --no-fund --silent
	@touch $@

test: deps venv pico-deps interop-deps
	@rc=0; $(VBIN)/pytest -q -n $(TEST_JOBS) --dist loadgroup tests/host $(PYTEST_ARGS) || \
		rc=$$?; \
	if [ $$rc -eq 5 ]; then \
		echo "error: no tests collected (pytest exit 5): check tests/host and PYTEST_ARGS" >&2; \
	fi; \
	exit $$rc

# The interop suite's brokers beyond mosquitto and amqtt: aedes (pinned in
# tools/brokers/package-lock.json; needs Node.js 20 or newer; nodejs and npm come with
# pico-deps, and where that node is older, as Debian bookworm's 18 is, Node.js 20 from
# npm, pinned in tools/brokers/node20, is installed for it) and RabbitMQ (Debian's
# rabbitmq-server, apt). The tests start their own RabbitMQ node on free ports, so a
# system service apt started is stopped again (the init script only when one runs: its
# rabbitmqctl would start a system epmd). Without root or passwordless sudo it says what
# to install; the RabbitMQ tests skip until then.
MQS_RABBITMQ := /usr/lib/rabbitmq/bin/rabbitmq-server
interop-deps: tools/brokers/node_modules/.stamp
	@test -x $(MQS_RABBITMQ) && exit 0; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then sudo="sudo -n"; \
	else \
		echo "note: rabbitmq-server is not installed; the RabbitMQ interop tests skip." >&2; \
		echo "To run them: sudo apt-get install -y rabbitmq-server" >&2; \
		exit 0; \
	fi; \
	echo "Installing rabbitmq-server"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server || { \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q rabbitmq-server; } || \
		exit 1; \
	if [ -d /run/systemd/system ]; then \
		$$sudo systemctl stop rabbitmq-server >/dev/null 2>&1 || true; \
		$$sudo systemctl disable rabbitmq-server >/dev/null 2>&1 || true; \
	elif pgrep -u rabbitmq -x beam.smp >/dev/null 2>&1; then \
		$$sudo service rabbitmq-server stop >/dev/null 2>&1 || true; \
	fi

tools/brokers/node_modules/.stamp: tools/brokers/package-lock.json \
		tools/brokers/node20/package-lock.json | pico-deps
	npm ci --prefix tools/brokers --no-audit --no-fund --silent
	@if [ "$$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then \
		echo "node $$(node --version) is too old for aedes: Node.js 20 into tools/brokers/node20"; \
		npm ci --prefix tools/brokers/node20 --no-audit --no-fund --silent || exit 1; \
	fi
	@touch $@

interop: deps venv interop-deps
	$(VBIN)/pytest -q tests/host/test_interop*.py $(PYTEST_ARGS)

lint: venv
	$(VBIN)/ruff check tools tests/host

demo: deps venv
	$(VBIN)/python tools/demo.py $(DEMO_ARGS)

bench: deps venv
	$(VBIN)/python tools/bench.py $(BENCH_ARGS)

# Runs SCRIPT on the MicroPython unix port in RUN_DIR (its working directory: flash.img,
# the virtual board's littlefs image, and any relative path the script writes go there).
# MICROPYPATH: .frozen (asyncio and the other frozen modules), the library compiled to
# .mpy, and boards/unix (import board: board.mount() mounts flash.img at /flash).
run: venv
	@if [ -z "$(SCRIPT)" ]; then \
		echo "usage: make run SCRIPT=path/to/script.py [HEAP=256k] [RUN_DIR=build/run]" >&2; \
		exit 2; \
	fi
	@test -f "$(SCRIPT)" || { echo "error: $(SCRIPT): no such file" >&2; exit 2; }
	@$(VBIN)/python tools/mpy.py --out build/mpy >/dev/null
	@mkdir -p $(RUN_DIR)
	cd $(RUN_DIR) && MICROPYPATH=.frozen:$(CURDIR)/build/mpy:$(CURDIR)/boards/unix \
		$(CURDIR)/$(VBIN)/micropython -X heapsize=$(HEAP) $(abspath $(SCRIPT))

# PORT counts only when given on the command line: some shells and CI export PORT
board-test: venv
	.venv/bin/python tools/board_test.py \
		$(if $(filter command line,$(origin PORT)),--port $(PORT)) $(BOARD_TEST_ARGS)

clean:
	rm -rf build .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
