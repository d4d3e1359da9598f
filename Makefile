# The two set-up commands: `make lab` and `make test`.
VENV      ?= .venv
PY        := $(VENV)/bin/python
PIP       := $(VENV)/bin/pip
PYTEST    := $(VENV)/bin/pytest
# Debian packages the integration tests drive for real.
DEB_PKGS  := freeradius freeradius-utils hostapd eapoltest freediameter postgresql iproute2 \
             tshark openssl iputils-ping systemd prometheus lua5.2 \
             patroni python3-etcd etcd-server
PYTEST_ARGS ?=

.PHONY: test unit lab deps venv clean bench mutation

test: deps venv
	$(PYTEST) -q $(PYTEST_ARGS)

unit: venv
	$(PYTEST) -q -m "not integration" $(PYTEST_ARGS)

lab: venv
	$(VENV)/bin/mip6-lab up

venv: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $@

# Installs the servers the integration tests start themselves; skipped when
# not root (the integration tests then skip with a message saying why).
deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  missing=$$(for p in $(DEB_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing: $$missing"; \
	    apt-get update -q >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; \
	  fi; \
	else echo "not root: Debian packages not installed; integration tests may skip"; fi

bench: venv
	for b in bench/[!_]*.py; do $(PY) $$b || exit 1; done

# Mutation testing of the security-critical modules (off CI, not part of `test`;
# docs/mutation.md): one mutmut pattern at a time, smallest module first, each mutant
# checked by the unit tests that run its function. The RADIUS client runs its reply path
# only (its timers are real-time tests). One module:
#   make mutation MUTATION_PATTERNS='aaa_mip6.replay.*'
RADIUS_CLIENT := aaa_mip6.twisted.radius_client
MUTATION_PATTERNS ?= 'aaa_mip6.replay.*' 'aaa_mip6.container.*' 'aaa_mip6.suites.*' \
                     'aaa_mip6.radius.codec.*' 'aaa_mip6.transform.*' \
                     '$(RADIUS_CLIENT).*_received__mutmut_*' '$(RADIUS_CLIENT).*_replied__mutmut_*' \
                     '$(RADIUS_CLIENT).*_ignore__mutmut_*' 'hac.core.*' 'aaa_mip6.tvheaders.*' \
                     'ha.core.*' 'aaa_mip6.diameter.peer.*'
MUTATION_JOBS     ?= 2

mutation: venv
	$(PIP) install -q -e '.[test,mutation]'
	rm -rf mutants
	for pattern in $(MUTATION_PATTERNS); do \
	  echo "mutmut: $$pattern"; \
	  nice -n 15 $(VENV)/bin/mutmut run --max-children $(MUTATION_JOBS) "$$pattern" >/dev/null \
	    || exit 1; \
	done
	$(PY) tests/mutation_score.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache mutants
