# The two quick-start commands of the README.
.PHONY: setup demo test

setup:
	@bash scripts/setup.sh

# Set everything up, then run the main job on a built-in default model.
demo: setup
	mkdir -p out
	.venv/bin/dnnkit prune zoo:digits-cnn --ratio 0.7 --layer-adaptive --data digits -o out/digits-cnn-pruned.safetensors --force

# Set everything up, then lint and run the test suite.
test: setup
	.venv/bin/ruff check dnnkit tests benchmarks
	.venv/bin/python -m pytest
