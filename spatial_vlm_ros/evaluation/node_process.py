"""The nodes under evaluation: start the perception node (a subprocess of this interpreter, or in this process)
and, for engine ``vlm``, a ``vlm_node`` subprocess; the parameters the evaluation imposes on them; wait until
they serve; stop them and keep their logs. Times in seconds.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from spatial_vlm_ros.core.errors import InputError

from .config import REPO_ROOT, EvaluationConfig


def node_parameter_overrides(cfg: EvaluationConfig) -> dict:
    """Parameters the evaluation imposes on the node, on top of the user's file.

    ``memory.timeout_s``: replay pauses while questions are asked, and the node expires objects after this
    long without frames (wall time), so it must outlast a pause; frame sets of different scenes are separated
    with ``~/reset`` instead. ``publish_rate_hz`` 0: ``~/objects`` is published per processed frame with that
    frame's stamp, which is how the runner knows a frame was processed.
    """
    overrides = {"memory.timeout_s": 1e5, "publish_rate_hz": 0.0}
    if cfg.engine == "vlm":
        overrides.update(vlm_service=vlm_service(cfg), vlm_timeout_s=cfg.vlm_timeout_s + 5.0)
    return {**overrides, **cfg.parameter_overrides}


def vlm_service(cfg: EvaluationConfig) -> str:
    """The ``Ask`` service of the evaluation's VLM node (in ``cfg.namespace``)."""
    return "/" + "/".join(p for p in (cfg.namespace.strip("/"), "spatial_vlm", "ask") if p)


def vlm_parameter_overrides(cfg: EvaluationConfig) -> dict:
    """The VLM node's parameters on top of ``config/vlm.yaml``: the model, and a request timeout that the
    perception node's forward outlasts (so the VLM's own timeout message comes back)."""
    return {"model": cfg.vlm_model, "request_timeout_s": cfg.vlm_timeout_s, **cfg.vlm_parameters}


def _ros_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _ros_parameters(values: dict) -> list[str]:
    return [x for k, v in values.items() for x in ("-p", f"{k}:={_ros_value(v)}")]


class NodeRunner:
    """The perception node for the evaluation: a subprocess of this interpreter, or in this process."""

    def __init__(self, cfg: EvaluationConfig, params_file: Path, log_path: Path):
        self.cfg, self.params_file, self.log_path = cfg, params_file, log_path
        self.proc: subprocess.Popen | None = None
        self._log = None
        self._inproc = None

    def start(self) -> None:
        overrides = node_parameter_overrides(self.cfg)
        if self.cfg.node == "inprocess":
            self._start_inprocess(overrides)
            return
        cmd = [sys.executable, "-m", "spatial_vlm_ros.ros.run", "--params", str(self.params_file),
               "--detector", self.cfg.detector]
        if self.cfg.namespace:
            cmd += ["--namespace", self.cfg.namespace]
        self._spawn(cmd + ["--ros-args"] + _ros_parameters(overrides))

    def _spawn(self, cmd: list[str]) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")  # noqa: SIM115 - the node process writes to it until stop() closes it
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     cwd=str(REPO_ROOT))

    def _start_inprocess(self, overrides: dict) -> None:
        import threading

        import rclpy
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter

        from spatial_vlm_ros.ros.parameters import NODE_NAME, load_parameter_file
        from spatial_vlm_ros.ros.perception_node import SpatialPerceptionNode

        values = load_parameter_file(str(self.params_file), NODE_NAME, self.cfg.namespace)
        values.update(overrides, detector=self.cfg.detector)
        ctx = rclpy.Context()
        rclpy.init(context=ctx)
        node = SpatialPerceptionNode(context=ctx, namespace=self.cfg.namespace or None,
                                     parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        executor = MultiThreadedExecutor(num_threads=4, context=ctx)
        executor.add_node(node)
        thread = threading.Thread(target=executor.spin, name="perception-node", daemon=False)
        thread.start()
        self._inproc = (ctx, node, executor, thread)

    def alive(self) -> bool:
        if self._inproc is not None:
            return True
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        """Stop the node (SIGINT, then SIGTERM/SIGKILL if it hangs); return its exit code."""
        if self._inproc is not None:
            return self._stop_inprocess()
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                _interrupt(self.proc)
            code = self.proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def _stop_inprocess(self) -> int:
        import rclpy
        ctx, node, executor, thread = self._inproc
        executor.shutdown()
        thread.join(timeout=10)
        node.destroy_node()
        rclpy.try_shutdown(context=ctx)
        self._inproc = None
        return 0


def _interrupt(proc: subprocess.Popen) -> None:
    """SIGINT, 10 s to exit, then SIGTERM, 5 s, then SIGKILL."""
    proc.send_signal(2)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class VLMNodeRunner(NodeRunner):
    """The ``spatial_vlm`` node of ``engine: vlm``: a subprocess with ``config/vlm.yaml`` and
    ``vlm_parameter_overrides``."""

    def start(self) -> None:
        cmd = [sys.executable, "-m", "spatial_vlm_ros.ros.vlm_node", "--ros-args", "--params-file",
               str(self.params_file)] + _ros_parameters(vlm_parameter_overrides(self.cfg))
        if self.cfg.namespace.strip("/"):
            cmd += ["-r", f"__ns:=/{self.cfg.namespace.strip('/')}"]
        self._spawn(cmd)


def wait_for_node(client, node: NodeRunner, deadline: float) -> None:
    """Until the perception node's services are up (``client``: a ``node_client.PerceptionClient``);
    InputError with the node's log when it exits or ``deadline`` (``time.monotonic()``) passes first."""
    while not client.wait_for_services(timeout_s=1.0):
        if not node.alive() or time.monotonic() > deadline:
            raise InputError("the perception node did not start (services not available); its log:\n"
                             + node.log_tail())


def wait_for_vlm(client, vlm: VLMNodeRunner, cfg: EvaluationConfig, deadline: float) -> None:
    """Until the VLM node's ``Ask`` service is up (its model loads in the background: the first question
    waits for it, up to ``vlm_timeout_s``)."""
    from spatial_vlm_interfaces.srv import Ask

    probe = client.node.create_client(Ask, vlm_service(cfg))
    try:
        while not probe.wait_for_service(timeout_sec=1.0):
            if not vlm.alive() or time.monotonic() > deadline:
                raise InputError(f"the VLM node did not start ({vlm_service(cfg)} not available); its log:\n"
                                 + vlm.log_tail())
    finally:
        client.node.destroy_client(probe)
