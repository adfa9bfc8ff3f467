"""Many checkpoints, one command: input expansion, plans, executors (local pool, Ray), resume.

The CLI is `dnnkit batch INPUTS... -- COMMAND [ARGS]` (dnnkit/cli/batch.py). Library entry points:
`inputs.expand_inputs`, `plan.resolve_command` / `plan.build_items`, `runner.run_batch` with a
`local.LocalExecutor` or `ray_executor.RayExecutor`. Nothing here imports torch or Ray at import time.
"""
