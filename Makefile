# tflite-train: the commands a newcomer runs.
#   make setup demo    set up (venv + Debian packages) and run the demo on a built-in example
#   make test          the whole test suite
VENV    ?= .venv
PY      := $(VENV)/bin/python
APT_PKGS := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm dataset-fashion-mnist \
            libstdc++-arm-none-eabi-dev libflatbuffers-dev g++ cmake binutils

.PHONY: setup apt venv test demo bench mcu-test kernels clean

setup: apt venv

# Debian packages: the Cortex-M7 toolchain (with C++ headers for the TFLM glue), QEMU,
# Fashion-MNIST, flexbuffers for the glue, and the C++/CMake/binutils its tests use.
# Skipped when present.
apt:
	@missing=""; for p in $(APT_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	else echo "Debian packages present"; fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

test:
	$(PY) -m pytest -n 2 --dist worksteal -q --durations=20 tests

demo:
	$(PY) -m tflite_train.demo

# The C training kernels for the host and the TFLM glue for the pinned wheel, into
# micro_kernels/build (--engine c / --engine tflm build theirs into the user's cache).
kernels:
	$(MAKE) -C micro_kernels all tflm-wheel

# The kernels (training and forward, portable and DSP) cross-compiled for Cortex-M7 and run
# under QEMU (part of `make test`).
mcu-test:
	$(PY) -m pytest -q tests/test_cortex_m7.py tests/test_cortex_m7_forward.py tests/test_cortex_m7_dsp.py

# Every benchmark, each writing its JSON and re-rendering its tables in benchmarks/RESULTS.md
# (long: benchmarks/run.py lists them; `--only NAME` runs one).
bench:
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info .cache
	$(MAKE) -C micro_kernels clean
