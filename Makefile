# The two commands of the README: `make test` and `make demo`. Both set everything up first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.requirements-installed
BUILD_STAMP := install/.colcon-built
ROS := scripts/ros_env.sh
INTERFACES := $(wildcard spatial_vlm_interfaces/msg/*.msg spatial_vlm_interfaces/srv/*.srv) \
              spatial_vlm_interfaces/CMakeLists.txt spatial_vlm_interfaces/package.xml
PYTEST_ARGS ?=

.PHONY: install test demo build bench train clean

install: $(VENV_STAMP) $(BUILD_STAMP)

$(VENV_STAMP): requirements.txt requirements-nodeps.txt scripts/install_system_deps.sh
	scripts/install_system_deps.sh
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	touch $(VENV)/COLCON_IGNORE $@

$(BUILD_STAMP): $(VENV_STAMP) $(INTERFACES) setup.py setup.cfg package.xml
	scripts/build.sh
	touch $@

build: $(VENV_STAMP)
	scripts/build.sh

# Unit and integration tests; ROS tests run in a private network namespace (scripts/ros_env.sh).
test: install
	SVR_ISOLATE=1 $(ROS) python -m pytest -q -p no:cacheprovider test $(PYTEST_ARGS)

demo: install
	$(ROS) python -m spatial_vlm_ros.cli demo

bench: install
	SVR_ISOLATE=1 $(ROS) python benchmarks/bench_lifting.py
	SVR_ISOLATE=1 $(ROS) python benchmarks/bench_pipeline.py
	SVR_ISOLATE=1 $(ROS) python benchmarks/bench_gravity.py
	SVR_ISOLATE=1 $(ROS) python benchmarks/bench_services.py
	SVR_ISOLATE=1 $(ROS) python benchmarks/bench_realtime.py --seconds 10 --clients 1 4
	$(ROS) python benchmarks/bench_vlm.py
	$(ROS) python benchmarks/bench_perception.py --repeats 5
	$(ROS) python benchmarks/bench_synthesis.py

# The compact spatial VLM (issue 11): synthesise QA over simulated scenes, train from scratch on the CPU
# (about an hour on 2 cores), then score it on scenes of an unseen seed. Weights stay in out/ (not in git).
TRAIN_OUT ?= out/compact-cpu
TRAIN_SEED ?= 0
EVAL_SEED ?= 1001
train: install
	$(ROS) python -m spatial_vlm_ros.cli train --preset compact-cpu --out $(TRAIN_OUT) --seed $(TRAIN_SEED)
	$(ROS) python -m spatial_vlm_ros.cli evaluate-vlm --model $(TRAIN_OUT) --seed $(EVAL_SEED) --report $(TRAIN_OUT)/report

clean:
	rm -rf build install log
