# medvid: two commands set everything up. Both create .venv from environment.yml when missing.
#   make run   -> every study notebook, default parameters, via papermill -> outputs/<study>/default/
#   make test  -> unit tests + nbval (--nbval-lax) over the committed notebooks: deterministic cells exact,
#                 trained results within a tolerance of notebooks/references/ (medvid_core/reference.py)
# MEDVID_REPLAY=1 pins the CPU kernels the committed notebooks ran with (exact replay, x86-64);
# MEDVID_DATA=/some/disk moves the generated cohorts and caches away from data/.
PY    := .venv/bin/python
STAMP := .venv/.medvid-installed

.PHONY: env run test test-replay notebooks bench lab docs clean-outputs

env: $(STAMP)

$(STAMP): environment.yml tools/setup_env.sh tools/pip_requirements.py
	bash tools/setup_env.sh

run: $(STAMP)
	$(PY) -m medvid_core batch

test: $(STAMP)
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-cell-timeout=1200 -p no:cacheprovider

# The same tests with the CPU kernels pinned as the committed notebooks ran (their tables replay digit for digit).
test-replay: $(STAMP)
	MEDVID_REPLAY=1 $(PY) -m pytest tests notebooks --nbval-lax --nbval-cell-timeout=1200 -p no:cacheprovider

# Re-execute the committed notebooks in place after changing them: their outputs are nbval's exact
# reference, and the trained results they print become notebooks/references/<study>.json (pinned kernels).
notebooks: $(STAMP)
	MEDVID_REPLAY=1 MEDVID_RECORD_REFERENCE=1 $(PY) -m jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=1200 \
		--ExecutePreprocessor.kernel_name=medvid notebooks/*.ipynb
	$(PY) -m medvid_core tidy notebooks/*.ipynb

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lab: $(STAMP)
	$(PY) -m jupyter lab notebooks

# The study site in site/ (open site/index.html): the docs pages and the committed notebooks as saved, nothing
# executed (mkdocs.yml). mkdocs reads one folder and the notebooks live outside docs/, so the pages are staged
# into build/docs as copies in the repository's own layout (README.md, CHANGELOG.md, docs/, notebooks/): relative
# links work alike on GitHub and on the site, and no symlink has to survive a checkout. --strict: a broken link
# or a notebook that stops rendering fails the target (and CI).
docs: $(STAMP)
	rm -rf build/docs && mkdir -p build/docs/notebooks
	cp README.md CHANGELOG.md build/docs/
	cp -R docs build/docs/docs
	cp notebooks/*.ipynb build/docs/notebooks/
	$(PY) -m mkdocs build --strict --clean

clean-outputs:
	find outputs -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +
