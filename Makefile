# Two commands do all the set-up on a fresh Debian machine (Python 3.11, root for apt):
#   make demo   - create .venv, install everything, run the demo on the bundled sample stack
#   make test   - the same set-up plus Xvfb, then ruff and the whole test suite (which builds
#                 the documentation with warnings as errors and runs the README's examples)
#   make docs   - the documentation site into site/
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# torch is pinned in the same pip call as everything else: an unpinned torch pulls a CUDA build.
TORCH  := torch==2.13.0
# Debian packages napari's GUI tests need: an X server and Qt's xcb plugin libraries.
APT_PKGS := xvfb libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 \
            libxcb-render-util0 libxcb-randr0 libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 \
            libgl1 libegl1 libfontconfig1 libdbus-1-3
DEMO_DIR ?= flowinpaint-demo

.PHONY: demo test lint bench screenshots docs system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "$(TORCH)" -e ".[testing]"
	touch $(STAMP)

system-deps:
	@missing=$$(for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: $(STAMP)
	$(BIN)/napari-flowinpaint demo -o $(DEMO_DIR) --overwrite

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP) system-deps lint
	$(BIN)/python -m pytest -q

# the README's pictures of the widgets, made in a real napari window under Xvfb
screenshots: $(STAMP) system-deps
	xvfb-run -a -s "-screen 0 1400x900x24" $(BIN)/python docs/make_screenshots.py

# the documentation site (docs/, mkdocs.yml) into site/; warnings are errors. Its tables are
# made from benchmarks/results/*.json (benchmarks/tables.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_repair.py

clean:
	rm -rf $(VENV) build dist site src/*.egg-info $(DEMO_DIR)
