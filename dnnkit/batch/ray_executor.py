"""The Ray executor: one Ray task per item on an existing cluster (`ray` is imported only here, lazily).

Each task runs the item in-process in a Ray worker (which Ray reuses across tasks, so torch is
imported once per worker). Inputs and outputs must be on storage that every node sees at the same
path, and the nodes need the same dnnkit installed. The address is checked with a plain TCP connect
first, so an unreachable cluster is one `error:` line (exit 2) within seconds, not a hang.
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from typing import Any

from dnnkit.batch.plan import BatchItem
from dnnkit.batch.worker import STATUS_FAILED
from dnnkit.errors import InputError

Emit = Callable[[BatchItem, dict[str, Any]], None]
START_HINT = ("start a cluster with `ray start --head` (then pass --address auto), or check the address "
              "(HOST:PORT of the head node's GCS, default port 6379)")
CONNECT_TIMEOUT_S = 3.0


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise InputError("--executor ray needs Ray, which is not installed",
                         hint="pip install 'dnnkit[ray]'") from exc
    return ray


def resolve_address(address: str) -> str:
    """`auto` -> the local cluster's HOST:PORT (via RAY_ADDRESS or Ray's record of the running cluster)."""
    if address.startswith("ray://") or address not in ("auto", ""):
        return address
    _import_ray()
    try:
        from ray._private.services import canonicalize_bootstrap_address

        found = canonicalize_bootstrap_address("auto")
    except (ConnectionError, ValueError) as exc:
        raise InputError(f"cannot reach a Ray cluster at --address {address}: no running cluster found",
                         hint=START_HINT) from exc
    except ImportError:  # pragma: no cover - a Ray without this helper: let ray.init find it
        return address
    if not found:
        raise InputError(f"cannot reach a Ray cluster at --address {address}: no running cluster found",
                         hint=START_HINT)
    return found


def check_reachable(address: str) -> None:
    """A TCP connect to HOST:PORT; an InputError naming the address when nothing answers."""
    target = address.removeprefix("ray://")
    host, sep, port_text = target.rpartition(":")
    if not sep:
        host, port_text = target, "10001" if address.startswith("ray://") else "6379"
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError as exc:
        raise InputError(f"--address {address!r} is not HOST:PORT", hint=START_HINT) from exc
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(f"cannot reach a Ray cluster at {address} ({reason})", hint=START_HINT) from exc


@functools.lru_cache(maxsize=1)
def _remote_function() -> Any:
    """The Ray remote function, defined on first use so that importing dnnkit never imports Ray."""
    ray = _import_ray()

    @ray.remote
    def run_batch_item(argv: list[str], threads: int, sha_of: str | None, command_factory: Any) -> dict[str, Any]:
        from dnnkit.batch.worker import run_item

        return run_item(argv, threads, sha_of, command_factory)

    return run_batch_item


class RayExecutor:
    """Submits one task per item to the Ray cluster at `address`."""

    name = "ray"

    def __init__(self, address: str, threads: int, command_factory: Any, cpus_per_task: float = 1.0,
                 gpus_per_task: float = 0.0) -> None:
        self.address = address
        self.threads = threads
        self.command_factory = command_factory  # picklable by reference (a module-level function)
        self.cpus_per_task = cpus_per_task
        self.gpus_per_task = gpus_per_task
        self._connected = False
        self.cluster = ""

    def describe(self) -> str:
        gpus = f", {self.gpus_per_task:g} GPU" if self.gpus_per_task else ""
        return (f"ray at {self.address}{self.cluster}, {self.cpus_per_task:g} CPU{gpus} per task, "
                f"{self.threads} torch thread{'s' if self.threads > 1 else ''} each")

    def connect(self) -> None:
        """Check the address and connect (before any item runs); InputError (exit 2) when unreachable."""
        import logging

        ray = _import_ray()
        resolved = resolve_address(self.address)
        check_reachable(resolved)
        try:
            ray.init(address=resolved, log_to_driver=False, logging_level=logging.WARNING)
        except Exception as exc:  # noqa: BLE001 - any failure to join the cluster is the same bad input
            raise InputError(f"cannot reach a Ray cluster at {self.address}: "
                             f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                             hint=START_HINT) from exc
        self._connected = True
        resources = ray.cluster_resources()
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        self.cluster = (f" ({nodes} node{'s' if nodes != 1 else ''}, {resources.get('CPU', 0):g} CPUs, "
                        f"{resources.get('GPU', 0):g} GPUs)")
        if self.gpus_per_task and ray.cluster_resources().get("GPU", 0) < self.gpus_per_task:
            self.close()
            raise InputError(f"--gpus-per-task {self.gpus_per_task:g}: the Ray cluster at {self.address} has "
                             f"{ray.cluster_resources().get('GPU', 0):g} GPUs", hint="add GPU nodes or lower it")

    def close(self) -> None:
        if self._connected:
            import ray

            ray.shutdown()
            self._connected = False

    def run(self, items: list[BatchItem], emit: Emit) -> None:
        """Submit every item, emit results as tasks finish; KeyboardInterrupt cancels what has not finished."""
        if not items:
            self.close()
            return
        ray = _import_ray()
        if not self._connected:
            self.connect()
        remote = _remote_function().options(num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task,
                                            max_retries=0)
        refs = {remote.remote(item.argv, self.threads, item.reference if item.report else None,
                              self.command_factory): item
                for item in items}
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    emit(refs[ref], self._get(ray, ref))
        except KeyboardInterrupt:
            self._interrupt(ray, pending, refs, emit)
            raise
        finally:
            self.close()

    @staticmethod
    def _get(ray: Any, ref: Any) -> dict[str, Any]:
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            return {"status": STATUS_FAILED, "exit_code": None, "metrics": None, "seconds": 0.0, "log": "",
                    "error": f"Ray task failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}

    @staticmethod
    def _interrupt(ray: Any, pending: list[Any], refs: dict[Any, BatchItem], emit: Emit) -> None:
        """Cancel unfinished tasks (a running one gets KeyboardInterrupt, so its writer cleans up)."""
        for ref in pending:
            ray.cancel(ref, force=False)
        while pending:
            try:
                done, pending = ray.wait(pending, num_returns=len(pending), timeout=60)
            except KeyboardInterrupt:
                continue
            for ref in done:
                try:
                    emit(refs[ref], ray.get(ref))
                except ray.exceptions.TaskCancelledError:
                    continue  # never started, or stopped before it reported
                except ray.exceptions.RayError:
                    continue
            if not done:
                break
