# BooM Console. `make run` starts the whole console; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench schema messages clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m console.launcher $(ARGS)

test: $(STAMP)
	scripts/test.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache --no-logo

bench: $(STAMP)
	scripts/bench.sh

schema: $(STAMP)
	$(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

# Strings are translated in locale/zh_Hans/LC_MESSAGES/django.po; the compiled .mo is committed too,
# so `make run` needs no gettext. JS text comes from the templates (data attributes, json_script).
messages: $(STAMP)
	$(PY) manage.py makemessages -l zh_Hans --ignore '.venv/*' --ignore 'var/*' --ignore 'tests/*' --ignore 'bench/*' && \
	$(PY) manage.py makemessages -d djangojs -l zh_Hans --ignore '.venv/*' --ignore 'var/*' --ignore 'static/vendor/*' && \
	$(PY) manage.py compilemessages -l zh_Hans --ignore '.venv/*'

clean:
	rm -rf $(VENV) var
