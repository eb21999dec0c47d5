"""The report: the machine's description, the results table, and this run's section of BENCHMARKS.md."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import keras
import numpy as np

from benchmarks.settings import Row

BUSY_LOAD = 0.5           # 1-minute load average above which the machine is flagged as busy


PREAMBLE = """# Benchmarks

Written by `python bench.py` (see the docstring of `benchmarks/` for what each section measures); one section per
run, newest last. Throughputs are medians of timed windows after warm-up, on random data in each
model's encoding.

FLOP convention: forward FLOPs per image from the layer shapes (a multiply-add = 2 FLOPs; conv:
2*k*k*cin*cout*Hout*Wout; dense: 2*in*out; biases, activations, normalization and resampling not
counted); training = 3 x forward (backward = 2 x forward); GAN train_step per real image =
G (fakes) + 2 x 3D (discriminator steps) + 3G + 2D (combined step, frozen D without weight
gradients) = 4G + 8D. "% peak" compares achieved GFLOP/s with the best float32 matmul
(NumPy or the Keras backend) measured in the same run.
"""


def parse_cpu_model(cpuinfo: str) -> str:
    """The first 'model name' of /proc/cpuinfo text ('unknown' if none)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return "unknown"


def parse_cpu_isa(cpuinfo: str) -> str:
    """The vector extensions that decide conv speed (oneDNN kernels, XLA), from /proc/cpuinfo flags."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            return " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
                            if f in flags) or "no AVX2"
    return "unknown"


def machine_info() -> dict:
    """CPU, cores, versions, backend, date and load: the header of a run's section."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        cpu, isa = parse_cpu_model(cpuinfo), parse_cpu_isa(cpuinfo)
    except OSError:
        cpu, isa = platform.processor() or "unknown", "unknown"
    try:
        import tensorflow as tf
        tf_version = tf.__version__
    except ImportError:
        tf_version = "not installed"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "isa": isa, "cores": os.cpu_count(), "usable_cores": usable, "tensorflow": tf_version,
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "TensorFlow's default"),
            "keras": keras.__version__, "numpy": np.__version__, "backend": keras.backend.backend(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def _fmt(value: float | None, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def render_table(rows: list[Row]) -> str:
    """Rows as one Markdown table."""
    lines = ["| section | item | setting | result | GFLOP/s | % peak | notes |",
             "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    for r in rows:
        cells = (r.section, r.item, r.setting, r.result, _fmt(r.gflops), _fmt(r.pct_peak), r.notes)
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def render_section(info: dict, command: str, settings_name: str, rows: list[Row], done: bool = True,
                   details: str = "") -> str:
    """A run's section of BENCHMARKS.md: header (machine, versions, command, settings) and the table."""
    load = info.get("load")
    busy = load is not None and load > BUSY_LOAD
    lines = [f"## {info['date']}: {settings_name} run, {info['backend']} backend",
             "",
             f"- command: `{command}`",
             f"- CPU: {info['cpu']} ({info.get('isa', 'unknown')}), {info['cores']} cores "
             f"({info['usable_cores']} usable); TF_ENABLE_ONEDNN_OPTS={info.get('onednn', 'unset')}",
             f"- TensorFlow {info['tensorflow']}, Keras {info['keras']}, NumPy {info['numpy']}, "
             f"Python {info['python']}, backend {info['backend']}",
             f"- load average at start: {_fmt(load, 2) or 'unknown'}"
             + (" (**busy machine: timings unreliable**)" if busy else ""),
             "- inception_resnet_v2 is timed with random weights (same cost as its ImageNet weights)"]
    if details:
        lines.append(f"- settings: {details}")
    if not done:
        lines.append("- **incomplete: the run was interrupted or is still going**")
    return "\n".join(lines) + "\n\n" + render_table(rows)


def _markers(run_id: str) -> tuple[str, str]:
    return f"<!-- bench run {run_id} -->", f"<!-- end bench run {run_id} -->"


def update_benchmarks(path: Path, run_id: str, section: str) -> None:
    """Put a run's section in the file: replaced if the run already wrote one, else appended.

    A new file starts with PREAMBLE. Writing the same (run_id, section) twice leaves the file as
    after the first time; other runs' sections are kept as they are.
    """
    path = Path(path)
    text = path.read_text() if path.exists() else PREAMBLE
    begin, end = _markers(run_id)
    block = f"{begin}\n{section.rstrip()}\n{end}"
    start = text.rfind(begin)
    stop = text.find(end, start) if start >= 0 else -1
    if start >= 0 and stop >= 0:
        text = text[:start] + block + text[stop + len(end):]
    else:   # (a section left without its end marker stays as it is)
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
