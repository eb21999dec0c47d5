"""Video: clips colorized end to end with the shipped run, frames per second, where the time goes, peak memory.

Each clip is a pan over scikit-image's ``coffee`` made by evaluation/videoset.py (h264, crf 18, 24 fps;
``Settings.video_clips``: 854 x 480 x 48 frames and 1920 x 1080 x 24 frames), colorized by
``inference.video.colorize_video`` (decode, colorize, encode to mp4: what ``colorize.py clip.mp4`` does)
with the shipped effnet_unet (``load_run("effnet_unet", pretrained/effnet_unet)``, the default runtime),
with stable colors (the default) and frame by frame (``stabilize=False``), best of ``video_repeats``.

Every clip size runs in a fresh child process (``python -c``), which loads the run, warms it up on the
clip's first frame (the network's file for that working size, the gamut table: model loading and
warm-up are not timed), times the clip in both modes, and reports its own peak resident set
(VmHWM of ``/proc/self/status``, else ``ru_maxrss``: the whole process, Python, ONNX Runtime, the model
and the frames; :func:`peak_rss_mb` says why not ru_maxrss first). A first child makes the lean ONNX
files the clips need, so no measured child imports TensorFlow. Reported per clip and mode: fps (frames /
wall seconds, reading to closing), CPU ms per frame (``time.process_time``: all threads), and ms per
frame per step (``VideoStats.timings``: decode, lightness and downsizing, flow, network, blend, full-size
color, encode).

Targets (issue 19), on the stable colors: 1080p >= 4 fps, 480p >= 15 fps, memory < 2 GB.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.settings import Context, Row, log

ROOT = Path(__file__).resolve().parents[1]
TARGET_FPS = {"480p": 15.0, "1080p": 4.0}
MEMORY_TARGET_MB = 2048
STEPS = ("decode", "lightness", "flow", "network", "blend", "recombine", "encode")   # VideoStats.timings' keys
RESULT = "video-bench-result: "      # the child's line with its JSON result


def make_clip(folder: Path, width: int, height: int, frames: int) -> Path:
    """A pan clip of evaluation/videoset (its JSON beside it), written once per size."""
    from evaluation import videoset
    name = f"pan-{width}x{height}-{frames}"
    path = folder / f"{name}.mp4"
    if not path.is_file():
        plan = videoset.clip_plan((width, height), frames, photoset=None)["pan"]
        videoset.write_clip(name, plan, folder, (width, height), videoset.FPS)
    return path


def _shipped():
    from inference.pretrained import load_run, shipped_run
    from models import SHIPPED_MODEL
    return load_run(SHIPPED_MODEL, shipped_run(SHIPPED_MODEL))


def prepare(clips: list[str]) -> None:
    """In a child: the first frame of each clip through the shipped run (makes its lean files, once)."""
    from inference.video import FrameColorizer, read_frames
    colorizer = _shipped()
    for clip in clips:
        FrameColorizer(colorizer)(next(iter(read_frames(clip))))


def measure(clip: str, out_dir: str, repeats: int) -> None:
    """In a fresh child: the clip in both modes, best of ``repeats``; prints RESULT + JSON."""
    import time

    from inference.video import FrameColorizer, colorize_video, read_frames
    colorizer = _shipped()
    FrameColorizer(colorizer)(next(iter(read_frames(clip))))           # warm-up: not timed
    result = {"runtime": colorizer.runtime, "modes": {}}
    for mode in ("stable", "frame"):
        best = None
        for i in range(repeats):
            cpu = time.process_time()
            stats = colorize_video(colorizer, clip, Path(out_dir) / f"{Path(clip).stem}-{mode}-{i}.mp4",
                                   stabilize=mode == "stable")
            cpu = time.process_time() - cpu
            if best is None or stats.fps > best["fps"]:
                best = {"fps": stats.fps, "frames": stats.frames, "seconds": stats.seconds,
                        "cpu_ms": 1000 * cpu / stats.frames,
                        "ms": {k: 1000 * stats.timings[k] / stats.frames for k in STEPS}}
        result["modes"][mode] = best
    result["peak_rss_mb"] = peak_rss_mb()
    print(RESULT + json.dumps(result), flush=True)


def peak_rss_mb() -> float:
    """This process's peak resident set, MB: VmHWM of /proc/self/status (its own address space), else ru_maxrss.

    Not ru_maxrss first: Linux carries it over exec from the parent that forked the child (bench.py, with
    TensorFlow loaded: 650 MB against 180 MB measured)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024                  # kB
    except OSError:
        pass
    import resource
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024       # macOS: bytes; Linux: kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def _child(call: str) -> str:
    """Run ``benchmarks.video.<call>`` in a fresh Python from the repository root; its stdout."""
    code = f"from benchmarks import video; video.{call}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"video.{call.split('(')[0]} failed: {(result.stderr or result.stdout)[-500:]}")
    return result.stdout


def bench_video(ctx: Context) -> list[Row]:
    s = ctx.settings
    folder, out = ctx.tmp / "video", ctx.tmp / "video-out"
    out.mkdir(parents=True, exist_ok=True)
    clips = {}
    for name, w, h, n in s.video_clips:
        log(f"video: making the {w}x{h} clip ({n} frames) ...")
        clips[name] = (make_clip(folder, w, h, n), w, h, n)
    _child(f"prepare({[str(c[0]) for c in clips.values()]!r})")
    rows, peaks = [], {}
    for name, (clip, w, h, n) in clips.items():
        log(f"video: {name} ({w}x{h}, {n} frames) ...")
        stdout = _child(f"measure({str(clip)!r}, {str(out)!r}, {s.video_repeats})")
        line = next(text for text in stdout.splitlines() if text.startswith(RESULT))
        r = json.loads(line[len(RESULT):])
        peaks[name] = r["peak_rss_mb"]
        for mode, m in r["modes"].items():
            steps = " / ".join(f"{m['ms'][k]:.1f}" for k in STEPS)
            rows.append(Row("video", f"{name}: {w}x{h}, {m['frames']} frames", f"{mode}, shipped effnet_unet "
                            f"({r['runtime']})", f"{m['fps']:.1f} fps",
                            notes=f"best of {s.video_repeats}; CPU {m['cpu_ms']:.0f} ms/frame; ms/frame "
                                  f"{'/'.join(STEPS)}: {steps}; peak RSS {r['peak_rss_mb']:.0f} MB (child process)"))
            log(f"video: {name} {mode}: {m['fps']:.1f} fps")
        stable = r["modes"]["stable"]["fps"]
        target = TARGET_FPS.get(name)
        if target is not None:
            ctx.summary.append(
                f"video {name} ({w}x{h}): stable {stable:.1f} fps (frame by frame {r['modes']['frame']['fps']:.1f}); "
                f"target >= {target:g} fps: {'PASS' if stable >= target else 'FAIL'}")
    worst = max(peaks, key=peaks.get)
    ctx.summary.append(f"video memory: peak RSS {peaks[worst]:.0f} MB ({worst}, the whole child process with the "
                       f"model); target < {MEMORY_TARGET_MB / 1024:g} GB: "
                       f"{'PASS' if peaks[worst] < MEMORY_TARGET_MB else 'FAIL'}")
    return rows
