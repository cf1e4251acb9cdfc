"""The product's Celery tasks sent from outside, as beat sends them: through the product's own Celery app (its
broker, key prefix and task routes, read from the stack's settings) in a ``manage.py shell`` of the stack, so the
stack's own worker runs them wherever the product routes them."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tests.drills.processes import ROOT


def send_task(env: dict[str, str], name: str, wait_s: float | None = None, queue: str | None = None) -> str:
    """Queue task ``name`` (on ``queue``, else where the product routes it); with ``wait_s``, wait that long for its
    result and return it (as printed), else the task's id. RuntimeError naming the task if it could not be sent or
    did not answer in time."""
    then = f"print(result.get(timeout={wait_s}))" if wait_s is not None else "print(result.id)"
    where = "" if queue is None else f", queue={queue!r}"
    code = f"from lucent_admin.celery import app\nresult = app.send_task({name!r}{where})\n{then}"
    try:
        done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, text=True,
                              capture_output=True, timeout=(wait_s or 0) + 60, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"task {name}: no answer") from None
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"task {name}: {said}")
    return done.stdout.strip().splitlines()[-1]


def ping_worker(env: dict[str, str], timeout: float, queue: str | None = None) -> str:
    """The product's ``lucent.ping`` on ``queue`` (None: the default): a worker consuming it answers (its host)."""
    return send_task(env, "lucent.ping", timeout, queue)


@contextmanager
def prepared_task(env: dict[str, str], name: str) -> Iterator[Callable[[], str]]:
    """A sender of task ``name`` started ahead (Django loaded, the broker connected), so that calling it queues the
    task within milliseconds, as a beat tick would at that moment; the call returns the task's id."""
    code = ("import sys\nfrom lucent_admin.celery import app\napp.connection_for_write().ensure_connection()\n"
            f"print('ready', flush=True)\nsys.stdin.readline()\nprint(app.send_task({name!r}).id, flush=True)")
    proc = subprocess.Popen([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    def send() -> str:
        stdin.write("send\n")
        stdin.flush()
        return stdout.readline().strip()

    try:
        while (line := stdout.readline()) and line.strip() != "ready":
            continue  # the shell's banner
        if not line:
            raise RuntimeError(f"task {name}: the sender did not start (exit {proc.wait()})")
        yield send
    finally:
        proc.kill()
        proc.wait()
