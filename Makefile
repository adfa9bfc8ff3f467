# The two quick-start commands of the README.
.PHONY: setup demo test smoke

setup:
	@bash scripts/setup.sh

# Set everything up, then run the main job on a built-in default model.
demo: setup
	mkdir -p out
	.venv/bin/dnnkit prune zoo:digits-cnn --ratio 0.7 --layer-adaptive --data digits -o out/digits-cnn-pruned.safetensors --force

# Set everything up, then lint and run the test suite.
test: setup
	.venv/bin/ruff check dnnkit tests benchmarks scripts
	.venv/bin/python -m pytest

# Set everything up, then run every command of the README tour and of each doc's quick example, as
# written, in a fresh temporary folder with a fresh DNNKIT_HOME (scripts/smoke.py; ~15 min on 2 cores).
smoke: setup
	.venv/bin/python scripts/smoke.py
