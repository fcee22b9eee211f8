# orbitq — every target sets itself up: a fresh machine needs only Python 3.11 and make.
#   make demo    the main job: a broker on embedded SQLite and a scenario through the real SDK
#   make test    the whole test suite (SQLite, and PostgreSQL when reachable; required in CI)
#   make check   lint + typecheck + tests + proto and SDK drift checks
#   make bench   benchmarks; figures printed and written to bench/results/

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BUF    := .tools/node_modules/.bin/buf
PKG_DIRS := ledger services clients proto/orbitq/v1
# The editable install is "strict" (a tree of links, which type checkers understand), so it is
# refreshed whenever a module appears or pyproject.toml changes.
SOURCES := $(shell find $(PKG_DIRS) -name '*.py' -o -name '*.pyi' -o -name 'py.typed' 2>/dev/null)
PROTOS  := $(wildcard proto/orbitq/v1/*.proto)
PYTEST_ARGS ?=
PROTOC := $(PY) -m grpc_tools.protoc -Iproto --plugin=protoc-gen-mypy=$(VENV)/bin/protoc-gen-mypy \
	--plugin=protoc-gen-mypy_grpc=$(VENV)/bin/protoc-gen-mypy_grpc

.PHONY: demo test check lint typecheck proto proto-check proto-lint sdk sdk-check bench wheel clean \
	pictures compile clean-compiled

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
	touch $@

$(VENV)/.installed: $(VENV)/.deps $(SOURCES)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . --config-settings editable_mode=strict
	$(PY) scripts/compile_scheduler.py --link  # the reinstalled link tree lacks `make compile`'s build
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/orbitq demo

test: $(VENV)/.installed
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy -p orbitq.v1 -p orbitq.ledger -p orbitq.services -p orbitq.clients
	$(VENV)/bin/mypy tests bench scripts

check: lint typecheck proto-check proto-lint sdk-check test

# Regenerate Python code and .pyi stubs beside the protos (committed).
proto: $(VENV)/.installed
	$(PROTOC) --python_out=proto --grpc_python_out=proto --mypy_out=proto --mypy_grpc_out=proto \
		$(PROTOS)

# Fails when the committed generated code differs from what the protos produce.
proto-check: $(VENV)/.installed
	rm -rf build/proto-check && mkdir -p build/proto-check
	$(PROTOC) --python_out=build/proto-check --grpc_python_out=build/proto-check \
		--mypy_out=build/proto-check --mypy_grpc_out=build/proto-check $(PROTOS)
	diff -r -x '*.proto' -x '__init__.py' -x 'py.typed' -x '__pycache__' \
		build/proto-check/orbitq/v1 proto/orbitq/v1 \
		|| (echo "generated code is stale: run 'make proto' and commit" >&2; exit 1)

# The blocking SDK (clients/_sync_*.py) is written from the asyncio one (clients/_async_*.py).
sdk: $(VENV)/.installed
	$(PY) scripts/unasync.py

# Fails when the committed blocking SDK differs from what its asyncio source makes.
sdk-check: $(VENV)/.installed
	$(PY) scripts/unasync.py --check

$(BUF):
	npm install --prefix .tools --no-audit --no-fund --no-save @bufbuild/buf@1.75.0

proto-lint: $(BUF)
	cd proto && ../$(BUF) lint

# Optional: the scheduler's hot modules compiled with mypyc, beside their sources (same
# placements, 1.2-1.9x the placements per CPU-second; docs/scheduler.md, "Compiled hot modules").
# Run again after editing a compiled module: the package refuses a stale build at import. A
# reinstall of the editable package links an existing build into it again.
compile: $(VENV)/.installed
	$(PY) scripts/compile_scheduler.py

clean-compiled:
	$(PY) scripts/compile_scheduler.py --clean

bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[bench]' --config-settings editable_mode=strict
	$(PY) -m pip install --quiet --no-deps ortools==9.15.6755
	$(PY) -m bench.run

# The README's pictures (docs/img/*.png, committed): a seeded simulation's schedule and a Starlink
# satellite's ground track, both from the bundled data, so they come out the same every time.
pictures: $(VENV)/.installed
	rm -rf build/pictures
	$(VENV)/bin/orbitq sim --nodes 12 --requests 600 --hours 12 --seed 1 --out build/pictures --json \
		> build/pictures.json
	$(VENV)/bin/orbitq schedule plot --from build/pictures/schedule.json --out docs/img/schedule.png \
		--size 1200x750
	$(VENV)/bin/orbitq contacts plot --node 44714 --tle bundled:starlink \
		--stations bundled:ground-stations --start 2025-12-06T00:00:00Z --hours 3 \
		--out docs/img/sky.png --size 1200x650
	# 256 colours are plenty for flat charts and keep each file well under 200 KB.
	$(PY) -c 'import sys; from PIL import Image; [Image.open(p).convert("RGB").quantize(256) \
		.save(p, optimize=True) for p in sys.argv[1:]]' docs/img/schedule.png docs/img/sky.png

wheel: $(VENV)/.installed
	rm -rf dist && $(PY) -m build --wheel --no-isolation --outdir dist .

clean:
	rm -rf $(VENV) build dist .tools .mypy_cache .ruff_cache .pytest_cache .hypothesis
	find services/scheduler -name '*.so' -delete
	rm -f services/scheduler/_compiled.json
