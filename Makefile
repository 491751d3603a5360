# SD Cloud — the two commands a newcomer needs:  make demo  |  make test
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VENV_EXT := .venv-a1111
VENV_FORGE := .venv-forge
VENV_IAC := .venv-iac
VENV_CHECKOV := .venv-checkov
# AWS mode (make deploy / destroy / image): stack name, region (default: your AWS config's),
# template parameters as Name=value words, PURGE=1 to delete the data on destroy.
STACK ?= sdcloud
REGION ?=
PARAMS ?=
PURGE ?=
AWS_FLAGS = --stack-name "$(STACK)" $(if $(REGION),--region "$(REGION)")
DATA ?= $(CURDIR)/.data
CHECKPOINT ?=
PIP_FLAGS := --disable-pip-version-check --quiet

.PHONY: demo test test-fast test-backend test-extension test-gpu lint bench envs chromium clean contract \
	iac-envs test-iac deploy destroy image

## demo: build what it needs, then run the local stack (container + middleware + UI) on loopback
demo: $(VENV)/.stamp $(VENV_EXT)/.stamp
	$(VENV)/bin/python tools/demo.py --data-dir "$(DATA)" $(if $(CHECKPOINT),--checkpoint "$(CHECKPOINT)")

## test: build what it needs, then run the whole suite: the backend env, then the extension side
## under A1111's pins (browser tests included) and under Forge's (gradio 4.40; browser tests run once).
## tests/iac (cfn-lint, checkov, sam validate --lint, sam build on middleware/template.yaml) runs in the
## backend line with the IaC tool environments built first.
test: envs iac-envs chromium
	@status=0; \
	$(VENV)/bin/ruff check . || status=1; \
	$(VENV)/bin/pytest tests --ignore=tests/extension -m "not gpu" -q || status=1; \
	SDCLOUD_BACKEND_PYTHON=$(CURDIR)/$(VENV)/bin/python $(VENV_EXT)/bin/pytest tests/extension -q || status=1; \
	SDCLOUD_BACKEND_PYTHON=$(CURDIR)/$(VENV)/bin/python $(VENV_FORGE)/bin/pytest tests/extension -m "not browser" -q || status=1; \
	exit $$status

## test-fast: skip the slow tests (real processes, browser)
test-fast: envs
	$(VENV)/bin/pytest tests --ignore=tests/extension -m "not gpu and not slow" -q
	SDCLOUD_BACKEND_PYTHON=$(CURDIR)/$(VENV)/bin/python $(VENV_EXT)/bin/pytest tests/extension -m "not slow" -q

## test-gpu: the GPU tests (run on a machine with CUDA)
test-gpu: envs
	$(VENV)/bin/pytest tests/gpu -m gpu -q

## bench: the benchmarks under benchmarks/ (JSON lines on stdout)
bench: envs
	$(VENV)/bin/python benchmarks/container_overhead.py
	$(VENV)/bin/python benchmarks/middleware_path.py
	$(VENV)/bin/python benchmarks/aws_path.py
	$(VENV)/bin/python benchmarks/model_upload.py

## contract: regenerate the generation contract and its copies in every deployable (after changing
## inference_container/engine/policy.py, the sampler catalog or tools/contract/generation_contract.py)
contract: $(VENV)/.stamp
	$(VENV)/bin/python -m tools.contract

lint: envs
	$(VENV)/bin/ruff check .

envs: $(VENV)/.stamp $(VENV_EXT)/.stamp $(VENV_FORGE)/.stamp

# torch is pinned in the same install as everything that needs it, so pip never swaps the CPU
# build for a CUDA one. open-clip-torch only carries the CLIP BPE vocabulary we read: --no-deps
# keeps its torchvision out.
# Each environment installs its requirements under a lock of exact versions (pip freeze of a
# known-good environment): no resolver backtracking, the same set on every machine.
$(VENV)/.stamp: requirements/container.txt requirements/middleware.txt requirements/local-server.txt requirements/dev.txt requirements/dev.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install $(PIP_FLAGS) -r requirements/dev.txt -c requirements/dev.lock
	$(VENV)/bin/pip install $(PIP_FLAGS) --no-deps open-clip-torch==3.3.0
	touch $@

$(VENV_EXT)/.stamp: requirements/extension-a1111.txt requirements/extension-a1111.lock
	test -x $(VENV_EXT)/bin/python || $(PYTHON) -m venv $(VENV_EXT)
	$(VENV_EXT)/bin/pip install $(PIP_FLAGS) -r requirements/extension-a1111.txt -c requirements/extension-a1111.lock
	touch $@

$(VENV_FORGE)/.stamp: requirements/extension-forge.txt requirements/extension-forge.lock
	test -x $(VENV_FORGE)/bin/python || $(PYTHON) -m venv $(VENV_FORGE)
	$(VENV_FORGE)/bin/pip install $(PIP_FLAGS) -r requirements/extension-forge.txt -c requirements/extension-forge.lock
	touch $@

## chromium: Debian's Chromium for the browser tests (skipped with a reason when it can't be installed)
chromium:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	    || echo "chromium could not be installed: browser tests will skip"; \
	  else echo "not root: install chromium yourself (apt-get install chromium) or browser tests skip"; fi; }

## test-iac: only the template checks (cfn-lint, checkov, sam validate --lint, sam build) and its unit tests
test-iac: $(VENV)/.stamp iac-envs
	$(VENV)/bin/pytest tests/iac tests/unit/middleware/test_aws_template.py tests/unit/test_aws_deploy.py -q

iac-envs: $(VENV_IAC)/.stamp $(VENV_CHECKOV)/.stamp

# SAM CLI + cfn-lint in one environment; checkov in its own (it pins boto3 1.35, SAM CLI pins 1.43).
$(VENV_IAC)/.stamp: requirements/iac.txt requirements/iac.lock
	test -x $(VENV_IAC)/bin/python || $(PYTHON) -m venv $(VENV_IAC)
	$(VENV_IAC)/bin/pip install $(PIP_FLAGS) -r requirements/iac.txt -c requirements/iac.lock
	touch $@

$(VENV_CHECKOV)/.stamp: requirements/iac-checkov.txt requirements/iac-checkov.lock
	test -x $(VENV_CHECKOV)/bin/python || $(PYTHON) -m venv $(VENV_CHECKOV)
	$(VENV_CHECKOV)/bin/pip install $(PIP_FLAGS) -r requirements/iac-checkov.txt -c requirements/iac-checkov.lock
	touch $@

## deploy: build the Lambda code and create or upgrade the AWS stack in place (data kept), showing its
## events; prints the API URL and where the admin key is. make deploy [STACK=sdcloud] [REGION=eu-west-1]
## [PARAMS="EnableTracing=true LogRetentionDays=90"]
deploy: $(VENV_IAC)/.stamp
	$(VENV_IAC)/bin/python tools/aws_deploy.py deploy $(AWS_FLAGS) $(foreach p,$(PARAMS),--parameter "$(p)")

## destroy: delete the stack; tables, bucket and admin key secret are kept unless PURGE=1 (asks you to
## type the stack name)
destroy: $(VENV_IAC)/.stamp
	$(VENV_IAC)/bin/python tools/aws_deploy.py destroy $(AWS_FLAGS) $(if $(PURGE),--purge)

## image: docker build inference_container/Dockerfile and push it to ECR (needs a running Docker engine)
image: $(VENV_IAC)/.stamp
	$(VENV_IAC)/bin/python tools/aws_deploy.py image $(if $(REGION),--region "$(REGION)") $(if $(TAG),--tag "$(TAG)")

clean:
	rm -rf $(VENV) $(VENV_EXT) $(VENV_FORGE) $(VENV_IAC) $(VENV_CHECKOV) build .pytest_cache .ruff_cache
