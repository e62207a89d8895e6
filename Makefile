# The project's two commands. Each does the whole set-up first (a virtual environment with the torch/torchvision pair,
# the package with its dev extras, Fashion-MNIST); a second run finds the set-up done and skips it.
#
#   make demo               train the baseline on the built-in dataset (README "Quick start")
#   make test               run the test suite, slowest tests listed at the end (what CI runs; also installs Debian's
#                           chromium for the demo's screenshot test)
#   make finetune-example   optional: fine-tune the demo checkpoint on a folder dataset with other labels
#
# Overridable: PYTHON (the interpreter that creates the venv), VENV, TORCH_PACKAGES (e.g. a CUDA or CPU build for your
# machine), FASHION_MNIST_DIR.

PYTHON ?= python3
VENV ?= .venv
# The pair that imports together on this project's machines (a CUDA build that also runs on the CPU).
TORCH_PACKAGES ?= torch==2.14.1 torchvision==0.29.1
FASHION_MNIST_DIR ?= /usr/share/datasets/fashion-mnist

PY := $(VENV)/bin/python
STAMP := $(VENV)/.mlic_hf-installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test finetune-example setup data browser

demo: setup data
	$(PY) scripts/train.py --preset demo

test: setup data browser
	$(PY) -m pytest -q tests --durations=15

finetune-example: setup data
	@[ -f outputs/demo/model.safetensors ] || $(MAKE) demo
	$(PY) scripts/make_example_dataset.py --output outputs/fashion-coarse
	$(PY) scripts/train.py --preset demo --model_name_or_path outputs/demo --dataset folder \
		--data_dir outputs/fashion-coarse --num_train_epochs 1 --output_dir outputs/demo-coarse

setup: $(STAMP)

# Re-installs when pyproject.toml changes (new dependencies).
$(STAMP): pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PACKAGES)
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -c "import mlic_hf, torch, torchvision, timm, transformers; print('mlic_hf', mlic_hf.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__)"
	touch $@

# Debian's package of the Fashion-MNIST IDX files (the built-in dataset's photos); elsewhere set FASHION_MNIST_DIR
# (read through MLIC_FASHION_MNIST_DIR) to a folder holding the four .gz files.
data:
	@if [ ! -f "$(FASHION_MNIST_DIR)/train-images-idx3-ubyte.gz" ]; then \
		if command -v apt-get >/dev/null && [ "$(FASHION_MNIST_DIR)" = /usr/share/datasets/fashion-mnist ]; then \
			echo "installing Fashion-MNIST (Debian package dataset-fashion-mnist)"; \
			$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq dataset-fashion-mnist >/dev/null; \
		else \
			echo "error: Fashion-MNIST not found in $(FASHION_MNIST_DIR): put its four IDX .gz files there" >&2; exit 2; \
		fi; \
	fi

# Debian's headless Chromium: tests/demo screenshots the Gradio demo with it (demo/check_screenshot.py).
browser:
	@if ! command -v chromium >/dev/null; then \
		if command -v apt-get >/dev/null; then \
			echo "installing Chromium (Debian package chromium, for the demo's screenshot test)"; \
			$(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "error: chromium not found: install it (the demo's screenshot test uses it)" >&2; exit 2; \
		fi; \
	fi

export MLIC_FASHION_MNIST_DIR := $(FASHION_MNIST_DIR)
