# medvid: two commands set everything up. Both create .venv from environment.yml when missing.
#   make run   -> every study notebook, default parameters, via papermill -> outputs/<study>/default/
#   make test  -> unit tests + nbval (--nbval-lax) over the committed notebooks
PY    := .venv/bin/python
STAMP := .venv/.medvid-installed

.PHONY: env run test notebooks bench lab clean-outputs

env: $(STAMP)

$(STAMP): environment.yml tools/setup_env.sh tools/pip_requirements.py
	bash tools/setup_env.sh

run: $(STAMP)
	$(PY) -m medvid_core batch

test: $(STAMP)
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-cell-timeout=1200 -p no:cacheprovider

# Re-execute the committed notebooks in place after changing them (their outputs are nbval's reference).
notebooks: $(STAMP)
	$(PY) -m jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1200 \
		--ExecutePreprocessor.kernel_name=medvid notebooks/*.ipynb

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lab: $(STAMP)
	$(PY) -m jupyter lab notebooks

clean-outputs:
	find outputs -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
