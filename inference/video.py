"""Video clips colorized frame by frame, streamed, with colors carried along the motion.

Reading and writing go through PyAV (FFmpeg's libraries in a wheel: no system ffmpeg). A clip is
decoded one frame at a time and each colorized frame is encoded at once, so memory does not grow
with the clip's length (the encoder's own look-ahead, a few frames, is the only buffer).

Per frame (H, W, 3) uint8 RGB, as ``Colorizer.colorize_photo`` does it: the full-resolution
lightness L (H, W) float32 in [0, 100], the network's chroma ab (h, w, 2) in LAB units at the
working size (effnet_unet: long side 32 by default), brought back to full size by the fast guided
filter (inference.fullres.recombine) with the frame's own L.

**Stable colors.** Colorizing each frame alone flickers: the network sees a slightly different
small image every frame and its colors jump. Between the network and the full-size recombination
the chroma goes through a *state* at the flow size (the frame's aspect ratio, long side
``Stabilization.flow_long_side``): the network's ab, brought to that size by the same guided
filter, is blended with the previous frame's state carried along the optical flow (OpenCV's DIS
flow on the two frames' L):

    ab_t = w ab_carried + (1 - w) ab_predicted,   w = carry x valid x exp(-(e_fb / fb_sigma)^2) x exp(-(dL / l_sigma)^2)

``valid``: the carried point came from inside the previous frame; e_fb: the forward-backward flow
error there (flow-size pixels); dL: the difference between the frame's L and the previous L
warped the same way (L units). Both are large where something was uncovered or the flow is
wrong, so there the frame's own prediction takes over. A *scene cut* (the mean dL over the valid
pixels above ``cut_l``, or fewer than half the pixels valid) resets the state: the frame after a
cut is colorized exactly as a first frame. ``stabilize=False`` gives the same path without the
blending (frame by frame; the reference for the flicker figures).

Measured (docs/video.md: the commands, every setting tried) with the shipped effnet_unet on the
videoset clips (640 x 360, 24 fps, 48 frames; evaluation/videoset.py): the excess flicker (known
motion) falls to 18 % of frame by frame's on the pan (0.513 against 2.835 LAB units), 16 % on the
pan with a cut (0.878 / 5.494), 10 % on the photo-set pan, below the original's own on the zoom;
per-frame PSNR rises 0.09 to 0.25 dB (before / after the cut: 26.16 / 23.39 against 25.91 / 23.20);
colorfulness drops up to 2.5. The defaults of :class:`Stabilization` were chosen there: more carry
lowers the flicker further but costs PSNR after a cut. Speed (2 shared cores, rough): 480p 6 to 21
fps, 1080p 3.5 to 5.1 fps, most of it the full-size color; memory flat with length (250 MB at 480p).

**Hints.** A reference (its color distribution, core.hints) applies to every frame (without points,
each frame's colors are also moved toward its a, b histograms, as for a photo). Points are
given for frame 0 in its pixels and carried forward along the flow (each moved by the forward flow
at its place), dropped when they leave the frame and all at a scene cut.

**Containers.** In: mp4, mkv, webm, mov, avi, animated GIF (anything FFmpeg reads). Out, by the
output's suffix: h264 in mp4 / mkv / mov (yuv420p; yuv444p when a side is odd, since 4:2:0 needs
even sides: same picture, but some browsers and QuickTime do not play 4:4:4 h264), VP9 in webm
(yuv420p; libvpx takes odd sides), MPEG-4 part 2 in avi, and GIF (a 256-color palette per frame;
GIF delays are whole centiseconds, so rates other than 100 / n come back rounded, 24 -> 25). Same
size and frame count; the frame rate is the input's average rate and each frame keeps its
timestamp (rounded to the output rate). Audio packets are copied unchanged (no re-encoding) when
the output container takes the codec (it does when the suffix is the input's); GIF has no audio.

**Damage.** A packet that fails to demux or decode or is flagged corrupt, an error FFmpeg logs
while decoding (a corrupt frame it would conceal), or a clip that ends early (fewer frames than its
index counts, mp4 / mov / avi; or its last frame ends before the duration it states, mkv / webm: a
truncated file) stops the reading; the frames colorized so far are finished and the output closed (playable),
then :class:`DamagedVideoError` (a loaders.cifar.DataError: the tools print one line) says how many were
written. GIF announces no count, so a truncated GIF ends quietly at its last whole frame. Damage
FFmpeg does not see is not seen here either: garbage that still decodes as valid h264 (measured: 300
bytes flipped in the middle of a small clip of this writer's, veryfast, were decoded without a word;
in one of x264's default settings they were caught at the frame they hit).
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from core import guided
from core import hints as core_hints
from inference import fullres
from loaders.cifar import DataError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".gif")
DEFAULT_RATE = Fraction(24)      # when a clip states no frame rate at all


class VideoError(DataError):
    """A clip that cannot be read or written (missing, not a video, no video stream): one line."""


class DamagedVideoError(VideoError):
    """The clip is damaged or truncated: reading stopped there, what was colorized is written and playable."""

    def __init__(self, message: str, frames_written: int):
        super().__init__(message)
        self.frames_written = frames_written


class _Damaged(Exception):
    """Raised by the reader where the clip stops being readable (frames read so far, why)."""

    def __init__(self, frames_read: int, reason: str):
        super().__init__(reason)
        self.frames_read = frames_read
        self.reason = reason


def is_video(path: Path) -> bool:
    """A file colorize.py treats as a clip: a video suffix; a .gif only when animated (a still GIF is a photo)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        return False
    if suffix != ".gif":
        return True
    from PIL import Image
    try:
        with Image.open(path) as img:
            return getattr(img, "n_frames", 1) > 1
    except Exception:   # noqa: BLE001 -- unreadable: the photo path reports it in its own words
        return False


def output_path(src: Path, out_dir: Path) -> Path:
    """Where a clip's colorized version goes: <out_dir>/<stem><suffix>, the container of the input."""
    src = Path(src)
    return Path(out_dir) / (src.stem + src.suffix.lower())


# ---- reading ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipInfo:
    """What a clip's container says about its video (and whether it has audio)."""
    path: Path
    width: int
    height: int
    rate: Fraction               # frames per second: the stream's average rate (else its guessed rate, else 24)
    frames: int | None           # the frame count the container states (mp4, mov, avi, gif); None when it does not
    duration: float | None       # seconds of the video stream, when stated (mkv/webm: the DURATION tag)
    audio: str | None            # the audio codec's name; None without audio
    container: str               # FFmpeg's demuxer name

    @property
    def expected_frames(self) -> int | None:
        """The frame count, stated or from the stated duration; None when the container says neither."""
        if self.frames:
            return self.frames
        if self.duration:
            return int(round(self.duration * float(self.rate)))
        return None


def _av():
    try:
        import av
    except ImportError:   # the tools print this as one line
        raise VideoError("video needs PyAV: pip install 'av>=12' (requirements-common.txt)") from None
    return av


def _tag_seconds(text: str | None) -> float | None:
    """Matroska's per-stream DURATION tag, 'HH:MM:SS.nnnnnnnnn' -> seconds; None when absent or odd."""
    try:
        h, m, s = str(text).split(":")
        return int(h) * 3600 + int(m) * 60 + float(s)
    except (ValueError, AttributeError):
        return None


class ClipReader:
    """A clip opened for reading: ``info``, ``audio_stream`` (the input's, for remuxing), and
    :meth:`frames`, a generator of (H, W, 3) uint8 RGB frames, one decoded at a time.

    ``with ClipReader(path) as reader: for rgb in reader.frames(on_audio=writer.mux_audio): ...``
    """

    def __init__(self, path: Path):
        av = _av()
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(f"{self.path}: no such file")
        try:
            self.container = av.open(str(self.path))
        except av.FFmpegError as err:
            raise VideoError(f"{self.path}: not a readable video ({_reason(err)}): damaged, truncated, "
                             "or not a video file") from None
        if not self.container.streams.video:
            self.container.close()
            raise VideoError(f"{self.path}: has no video stream")
        self.stream = self.container.streams.video[0]
        # Slice threads only: with frame threads the decoder reports a corrupt frame from a worker, after
        # later frames came out, and reading could not stop at it. Decoding is a small part of the time.
        self.stream.thread_type = "SLICE"
        audio = self.container.streams.audio
        self.audio_stream = audio[0] if audio else None
        self.info = self._info()
        self.last_time: float | None = None   # the time (seconds) of the frame frames() yielded last

    def _info(self) -> ClipInfo:
        s = self.stream
        rate = s.average_rate or s.guessed_rate or DEFAULT_RATE
        duration = None
        if s.duration and s.time_base:
            duration = float(s.duration * s.time_base)
        elif "DURATION" in s.metadata:
            duration = _tag_seconds(s.metadata["DURATION"])
        return ClipInfo(self.path, s.codec_context.width, s.codec_context.height, Fraction(rate),
                        int(s.frames) or None, duration,
                        self.audio_stream.codec_context.name if self.audio_stream is not None else None,
                        self.container.format.name)

    def frames(self, on_audio: Callable | None = None) -> Iterator[np.ndarray]:
        """The video's frames in order, (H, W, 3) uint8 RGB; ``on_audio(packet)`` gets each audio packet as
        it is demuxed (interleaved with the video, so a writer can copy it in order).

        Raises _Damaged (frames read, why) where the clip stops being readable (module docstring)."""
        av = _av()
        import av.logging as avlog
        streams = [self.stream] + ([self.audio_stream] if on_audio is not None and self.audio_stream else [])
        n = 0
        end = -math.inf       # the end time (seconds) of the latest frame: its time plus one frame
        checked = 0           # log messages looked at so far
        level = avlog.get_level()
        avlog.set_level(avlog.ERROR)     # FFmpeg reports a corrupt frame it conceals only in its log
        try:
            with avlog.Capture(local=False) as logs:
                for packet in self.container.demux(streams):
                    if packet.stream.type == "audio":
                        if packet.dts is not None:     # the demuxer's final empty packet has none
                            on_audio(packet)
                        continue
                    if packet.is_corrupt:
                        raise _Damaged(n, "a corrupt packet")
                    decoded = packet.decode()
                    errors = [m for lv, _, m in logs[checked:] if lv <= avlog.ERROR]
                    checked = len(logs)
                    if errors and n > 0:     # before the first frame: the decoder skips to a keyframe
                        raise _Damaged(n, f"a decoding error: {errors[0].strip()}")
                    for frame in decoded:
                        self.last_time = frame.time
                        if frame.time is not None:
                            end = max(end, frame.time + 1 / float(self.info.rate))
                        yield frame.to_ndarray(format="rgb24")
                        n += 1
        except av.FFmpegError as err:
            raise _Damaged(n, _reason(err)) from None
        finally:
            avlog.set_level(level)
        info = self.info
        if info.frames and n < info.frames:       # the index counts every frame: fewer is a cut-off file
            raise _Damaged(n, f"it ends after {n} of the {info.frames} frames its container announces (truncated)")
        # Only a duration (mkv, webm): compare times, not counts, so that a variable frame rate or a gap
        # in the timestamps is not taken for a cut-off file; a frame and a half of slack for rounding.
        if not info.frames and info.duration and end < info.duration - 1.5 / float(info.rate):
            shown = max(0.0, end) if n else 0.0
            raise _Damaged(n, f"it ends at {shown:.2f} s of the {info.duration:.2f} s its container announces "
                              "(truncated)")

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> ClipReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _reason(err: Exception) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return str(text).strip().rstrip(".")


def probe(path: Path) -> ClipInfo:
    """A clip's size, rate, frame count (when stated) and audio, without decoding it."""
    with ClipReader(path) as reader:
        return reader.info


def read_frames(path: Path) -> Iterator[np.ndarray]:
    """A clip's frames, (H, W, 3) uint8 RGB, one at a time (the video only); DamagedVideoError where it stops."""
    with ClipReader(path) as reader:
        try:
            yield from reader.frames()
        except _Damaged as err:
            raise DamagedVideoError(f"{path}: damaged after frame {err.frames_read} ({err.reason})",
                                    err.frames_read) from None


# ---- writing ------------------------------------------------------------------------------------

def _video_codec(suffix: str, width: int, height: int, rate: Fraction) -> tuple[str, str, dict, dict]:
    """(codec, pixel format, codec options, container options) for an output of this suffix and size."""
    odd = width % 2 or height % 2
    if suffix in (".mp4", ".mkv", ".mov"):
        # crf 18: visually lossless; veryfast: encoding stays a small part of the time at 1080p on 2 cores
        options = {"crf": "18", "preset": "veryfast"}
        # faststart: the index goes first, so the file plays while downloading (the demo page)
        container = {"movflags": "+faststart"} if suffix in (".mp4", ".mov") else {}
        return "libx264", "yuv444p" if odd else "yuv420p", options, container
    if suffix == ".webm":
        # realtime, cpu-used 8: libvpx's default deadline is many times slower than the colorization
        return "libvpx-vp9", "yuv420p", {"crf": "30", "b": "0", "deadline": "realtime", "cpu-used": "8",
                                        "row-mt": "1"}, {}
    if suffix == ".avi":
        # MPEG-4 part 2 at 0.2 bits per pixel and frame: its default 200 kb/s blurs any size
        bits = max(400_000, int(width * height * float(rate) * 0.2))
        return "mpeg4", "yuv420p", {"b": str(bits)}, {}
    if suffix == ".gif":
        return "gif", "pal8", {}, {}
    raise VideoError(f"cannot write {suffix or 'a file without suffix'} video: use one of {', '.join(VIDEO_SUFFIXES)}")


class ClipWriter:
    """A clip written frame by frame: ``write(rgb, seconds)``, ``mux_audio(packet)``, ``close()``.

    The container follows the path's suffix (``_video_codec``); ``audio``: the input's audio stream,
    copied packet by packet (``audio_note`` says why not when it cannot be)."""

    def __init__(self, path: Path, width: int, height: int, rate: Fraction, audio=None):
        av = _av()
        self.path = Path(path)
        self.suffix = self.path.suffix.lower()
        codec, self.pix_fmt, options, container_options = _video_codec(self.suffix, width, height, rate)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rate = Fraction(rate)
        self.width, self.height = width, height
        self.container = av.open(str(self.path), "w", options=container_options)
        self.stream = self.container.add_stream(codec, rate=self.rate)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, self.pix_fmt
        self.stream.options = options
        if self.pix_fmt.startswith("yuv"):
            # Frames are converted from RGB with BT.601 (swscale's default); say so, with sRGB's
            # primaries and curve, so a player does not assume BT.709 for HD sizes and shift the colors.
            cc = self.stream.codec_context
            cc.colorspace, cc.color_range, cc.color_primaries, cc.color_trc = 6, 1, 1, 13
        self.audio_stream, self.audio_note = None, None
        if audio is not None:
            if self.suffix == ".gif":
                self.audio_note = "GIF has no audio: the clip's audio is left out"
            else:
                try:
                    self.audio_stream = self.container.add_stream_from_template(audio)
                except (av.FFmpegError, ValueError) as err:
                    self.audio_note = (f"the audio ({audio.codec_context.name}) cannot go into {self.suffix}: "
                                       f"left out ({err})")
        self.frames = 0
        self._last_pts = -1
        self._closed = False

    def write(self, rgb: np.ndarray, seconds: float | None = None) -> None:
        """One frame (H, W, 3) uint8 RGB; ``seconds``: its time in the input (kept, rounded to the rate;
        None: right after the previous frame)."""
        av = _av()
        if self.pix_fmt == "pal8":
            frame = av.VideoFrame.from_ndarray(_palette_image(rgb), format="pal8")
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        pts = self._last_pts + 1
        if seconds is not None:
            pts = max(pts, int(round(seconds * self.rate)))   # monotonic, one tick per frame at least
        frame.pts, frame.time_base = pts, 1 / self.rate
        self._last_pts = pts
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def mux_audio(self, packet) -> None:
        """Copy one audio packet of the input (timestamps kept; PyAV rescales them to the output stream)."""
        if self.audio_stream is None:
            return
        packet.stream = self.audio_stream
        self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file (its index, its trailer): playable from here on."""
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
        finally:
            self.container.close()

    def __enter__(self) -> ClipWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _palette_image(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 -> (indices (H, W) uint8, palette (256, 4) ARGB uint8): the frame's own 256 colors
    (median cut, no dithering: dither noise would flicker from frame to frame)."""
    from PIL import Image
    img = Image.fromarray(np.ascontiguousarray(rgb)).quantize(256, method=Image.Quantize.MEDIANCUT,
                                                              dither=Image.Dither.NONE)
    rgb_pal = np.zeros((256, 3), np.uint8)
    pal = np.frombuffer(bytes(img.getpalette()[:768]), np.uint8).reshape(-1, 3)
    rgb_pal[:len(pal)] = pal
    argb = np.concatenate([np.full((256, 1), 255, np.uint8), rgb_pal], axis=1)
    return np.asarray(img, np.uint8), argb


# ---- stable colors ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stabilization:
    """How colors are carried from frame to frame (module docstring); defaults measured (docs/video.md)."""
    flow_long_side: int = 256    # the state's and the flow's size, long side (never above the frame's)
    carry: float = 0.9           # weight of the carried color where the flow is trusted (1 - blend weight)
    fb_sigma: float = 2.0        # forward-backward flow error (flow-size pixels) that lowers the weight to 1/e
    l_sigma: float = 12.0        # |L - warped previous L| (L units) that lowers the weight to 1/e
    cut_l: float = 10.0          # mean |L - warped previous L| over the valid pixels above which a cut is declared
    preset: int = cv2.DISOPTICAL_FLOW_PRESET_FAST


def flow_shape(full_hw: tuple[int, int], long_side: int) -> tuple[int, int]:
    """(h, w) of the flow and state for a frame of (H, W): aspect kept, long side ``long_side`` at most."""
    H, W = full_hw
    scale = min(1.0, long_side / max(H, W))
    return max(1, int(round(H * scale))), max(1, int(round(W * scale)))


def _as_flow_input(L: np.ndarray) -> np.ndarray:
    """L (h, w) in [0, 100] -> uint8 (DIS takes 8-bit gray)."""
    return np.clip(L * np.float32(2.55) + np.float32(0.5), 0, 255).astype(np.uint8)


def _remap(img: np.ndarray, map_x: np.ndarray, map_y: np.ndarray) -> np.ndarray:
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@dataclass
class Motion:
    """How the previous frame's flow-size pixels map onto this frame's (flow size, pixels)."""
    backward: np.ndarray   # (h, w, 2): for each pixel of this frame, the offset of its place in the previous one
    forward: np.ndarray    # (h, w, 2): for each pixel of the previous frame, the offset of its place in this one
    weight: np.ndarray     # (h, w) float32 in [0, 1]: trust in the carried color (valid x consistency), no carry factor
    mean_dl: float         # mean |L - warped previous L| over the valid pixels (L units)
    valid_fraction: float  # fraction of this frame's pixels whose place in the previous frame is inside it
    cut: bool


def estimate_motion(prev_l: np.ndarray, cur_l: np.ndarray, settings: Stabilization, dis=None) -> Motion:
    """Flows both ways between two flow-size L images (h, w) in [0, 100], the trust map, and the cut test."""
    h, w = cur_l.shape
    if min(h, w) < 8:   # too small for DIS' patches: no motion assumed, trust by the L difference alone
        back = np.zeros((h, w, 2), np.float32)
        fwd = back
    else:
        dis = dis or cv2.DISOpticalFlow_create(settings.preset)
        a, b = _as_flow_input(cur_l), _as_flow_input(prev_l)
        back = dis.calc(a, b, None)          # cur(x) ~ prev(x + back(x))
        fwd = dis.calc(b, a, None)           # prev(x) ~ cur(x + fwd(x))
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x, map_y = gx + back[..., 0], gy + back[..., 1]
    valid = (map_x >= -0.5) & (map_x <= w - 0.5) & (map_y >= -0.5) & (map_y <= h - 0.5)
    fwd_at = _remap(fwd, map_x, map_y)                         # the forward flow where each pixel came from
    fb_err = np.hypot(back[..., 0] + fwd_at[..., 0], back[..., 1] + fwd_at[..., 1])
    dl = np.abs(cur_l - _remap(prev_l, map_x, map_y))
    n_valid = int(valid.sum())
    mean_dl = float(dl[valid].mean()) if n_valid else float("inf")
    valid_fraction = n_valid / valid.size
    cut = valid_fraction < 0.5 or mean_dl > settings.cut_l
    weight = valid * np.exp(-(fb_err / settings.fb_sigma) ** 2) * np.exp(-(dl / settings.l_sigma) ** 2)
    return Motion(back, fwd, weight.astype(np.float32), mean_dl, valid_fraction, cut)


def carry_points(points: Iterable[core_hints.Point], motion: Motion, full_hw: tuple[int, int],
                 small_hw: tuple[int, int]) -> tuple[core_hints.Point, ...]:
    """Points (frame pixels) of the previous frame moved by the forward flow at their place; those that
    leave the frame are dropped."""
    (H, W), (h, w) = full_hw, small_hw
    sx, sy = w / W, h / H
    out = []
    for p in points:
        fx, fy = (p.x + 0.5) * sx - 0.5, (p.y + 0.5) * sy - 0.5                  # flow-size coordinates
        d = cv2.remap(motion.forward, np.float32([[fx]]), np.float32([[fy]]), cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)[0, 0]                       # the flow there, bilinear
        x, y = (fx + d[0] + 0.5) / sx - 0.5, (fy + d[1] + 0.5) / sy - 0.5
        if 0 <= x <= W - 1 and 0 <= y <= H - 1:
            out.append(dataclasses.replace(p, x=float(x), y=float(y)))
    return tuple(out)


class FrameColorizer:
    """Colorizes one clip's frames in order: ``out = fc(rgb)``, (H, W, 3) uint8 -> (H, W, 3) uint8.

    ``points``: core.hints.Point hints in frame 0's pixels (carried forward); ``reference``: a color
    image (h, w, 3) uint8 or its core.hints.Reference (the global hint of every frame, and without points
    the frames' colors moved toward its a, b histograms, as colorize_photo does), or its (Q,)
    distribution alone (the global hint, no matching); ``long_side``:
    the network's working size (Colorizer.working_shape); ``stabilize``: carry colors along the flow
    (False: each frame alone, same upsampling); ``label``: fusion_label's class. ``cuts`` lists the
    frames where a scene cut reset the colors; ``timings`` the seconds spent per step ("lightness":
    L and its downsizing to the working and flow sizes; "recombine": the full-size color).
    """

    def __init__(self, colorizer, points=(), reference=None, long_side: int | None = None,
                 stabilize: bool = True, label: int | None = None, settings: Stabilization = Stabilization()):
        self.colorizer = colorizer
        self.points = tuple(points)
        self.dist, self.ref_pixels = core_hints.split_reference(reference)
        # matched to the reference's histograms only without points, as colorize_photo does; decided for the
        # whole clip (points carried out of the frame or ended by a cut do not switch it on mid-clip)
        self.match = self.ref_pixels is not None and not self.points
        self.long_side = long_side
        self.stabilize = stabilize
        self.labels = None if label is None else np.array([label])
        self.settings = settings
        self.index = 0
        self.cuts: list[int] = []
        self.timings = dict.fromkeys(("lightness", "flow", "network", "blend", "recombine"), 0.0)
        self._prev = None      # (flow-size L, state ab) of the previous frame
        self._dis = None

    def _tick(self, key: str, t0: float) -> float:
        t = time.perf_counter()
        self.timings[key] += t - t0
        return t

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        rgb = np.asarray(rgb, np.uint8)
        full_hw = rgb.shape[:2]
        t = time.perf_counter()
        L = fullres.lightness(rgb)                                           # (H, W) [0, 100]
        shape = self.colorizer.working_shape(full_hw, self.long_side)
        small, guide = fullres.small_gray(L, shape)                          # (h, w, 3) uint8, (h, w) L
        fshape = flow_shape(full_hw, self.settings.flow_long_side)
        l_flow = guided.downsample_guide(L, fshape)                          # (fh, fw) L, area-averaged
        t = self._tick("lightness", t)
        motion = None
        if self._prev is not None and self._prev[0].shape != fshape:
            self._prev = None       # the stream changed size mid-clip: nothing to carry over, start afresh
            self.points = ()
        if self._prev is not None and (self.stabilize or self.points):
            if self._dis is None and min(fshape) >= 8:
                self._dis = cv2.DISOpticalFlow_create(self.settings.preset)
            motion = estimate_motion(self._prev[0], l_flow, self.settings, self._dis)
            if motion.cut:
                self.cuts.append(self.index)
                self.points = ()                                             # a keyframe's points end at a cut
            elif self.points:
                self.points = carry_points(self.points, motion, full_hw, fshape)
        t = self._tick("flow", t)
        ab_work = self.colorizer.working_ab(L, small, self.points, self.dist,   # (h, w, 2) LAB units, as
                                            self.ref_pixels if self.match else None, self.labels)   # photos
        t = self._tick("network", t)
        A, B = guided.coefficients(guide, ab_work)                           # the network's ab, at flow size
        state = guided.upsample_strip(A, B, l_flow, 0, fshape[0], *fshape)   # (fh, fw, 2)
        if self.stabilize and motion is not None and not motion.cut:
            gx, gy = np.meshgrid(np.arange(fshape[1], dtype=np.float32), np.arange(fshape[0], dtype=np.float32))
            carried = _remap(self._prev[1], gx + motion.backward[..., 0], gy + motion.backward[..., 1])
            w = (np.float32(self.settings.carry) * motion.weight)[..., None]
            state = w * carried + (1 - w) * state
        self._prev = (l_flow, state)
        t = self._tick("blend", t)
        out, _ = fullres.recombine(rgb, state, L=L, guide_small=l_flow)     # the photo path's full-size color
        self._tick("recombine", t)
        self.index += 1
        return out


# ---- progress ---------------------------------------------------------------------------------------

def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


class ProgressLine:
    """progress(done, total, elapsed[, final]) -> a line on stderr: frames done, frames per second, time
    left. On a terminal one line rewritten in place (every ``interval`` seconds, default 0.5); in a log
    (not a terminal) a new line every ``interval`` seconds (default 10); always one at the end."""

    def __init__(self, name: str = "", stream=None, interval: float | None = None):
        self.name, self.stream = name, stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.5 if self.tty else 10.0)
        self._shown = -math.inf

    def __call__(self, done: int, total: int | None, elapsed: float, final: bool = False) -> None:
        if not final and elapsed - self._shown < self.interval:
            return
        self._shown = elapsed
        fps = done / elapsed if elapsed > 0 else 0.0
        text = f"{self.name}: " if self.name else ""
        if total:
            text += f"{done}/{total} frames ({100 * done / total:.0f}%), {fps:.1f} fps"
            if not final and fps > 0:
                text += f", {_clock(max(0, total - done) / fps)} left"
        else:
            text += f"{done} frames, {fps:.1f} fps"
        if final:
            text += f", {_clock(elapsed)} in all"
        if self.tty:
            self.stream.write("\r" + text.ljust(72) + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


# ---- one clip ---------------------------------------------------------------------------------------

@dataclass
class VideoStats:
    frames: int                  # frames written
    seconds: float               # wall time, reading to closing
    fps: float
    width: int
    height: int
    rate: Fraction
    audio: bool                  # audio copied
    notes: list[str]             # what the tools should say (audio left out, ...)
    cuts: list[int]              # frames where a scene cut reset the colors
    stopped: bool = False        # a stop was requested: the frames so far were written
    timings: dict | None = None  # seconds per step (FrameColorizer.timings, plus decode and encode)


def colorize_video(colorizer, src: Path, dst: Path, points=(), reference=None, long_side: int | None = None,
                   stabilize: bool = True, label: int | None = None, progress: Callable | None = None,
                   stop=None, settings: Stabilization = Stabilization()) -> VideoStats:
    """Colorize the clip ``src`` into ``dst`` (its container by dst's suffix: output_path keeps src's).

    ``points``, ``reference``, ``long_side``, ``stabilize``, ``label``: as FrameColorizer. ``progress``:
    called as progress(done, total or None, elapsed seconds[, final=True]) after each frame (ProgressLine
    prints it). ``stop``: an object with ``.requested`` (core.stopping.GracefulStop): when set, the clip
    ends after the frame in progress (written and playable; ``stopped`` in the result).
    Raises VideoError (unreadable input) or DamagedVideoError (frames_written: the output holds them).
    """
    src, dst = Path(src), Path(dst)
    if dst.resolve() == src.resolve():
        raise VideoError(f"{dst}: the output would overwrite the input")
    t0 = time.perf_counter()
    damaged = None
    with ClipReader(src) as reader:
        info = reader.info
        fc = FrameColorizer(colorizer, points, reference, long_side, stabilize, label, settings)
        writer = ClipWriter(dst, info.width, info.height, info.rate, reader.audio_stream)
        decode = encode = 0.0
        stopped = False
        frames = reader.frames(on_audio=writer.mux_audio)
        try:
            while True:
                t = time.perf_counter()
                try:
                    rgb = next(frames)
                except StopIteration:
                    break
                except _Damaged as err:
                    damaged = err
                    break
                t1 = time.perf_counter()
                decode += t1 - t
                out = fc(rgb)
                t2 = time.perf_counter()
                writer.write(out, reader.last_time)
                encode += time.perf_counter() - t2
                if progress is not None:
                    progress(writer.frames, info.expected_frames, time.perf_counter() - t0)
                if stop is not None and getattr(stop, "requested", False):
                    stopped = True
                    break
        except BaseException:
            frames.close()
            writer.close()
            if writer.frames == 0:
                dst.unlink(missing_ok=True)   # a failure before any frame (bad hints, ...): no empty file left
            raise
        finally:
            frames.close()            # ends the reader's log capture now, not when garbage-collected
            t = time.perf_counter()
            writer.close()
            encode += time.perf_counter() - t
    seconds = time.perf_counter() - t0
    if progress is not None:
        progress(writer.frames, info.expected_frames, seconds, final=True)
    if damaged is not None:
        if writer.frames == 0:
            dst.unlink(missing_ok=True)   # nothing to keep: no empty file that looks like a result
            raise DamagedVideoError(f"{src}: damaged ({damaged.reason}); no frame could be colorized, "
                                    "nothing written", 0)
        raise DamagedVideoError(f"{src}: damaged ({damaged.reason}); wrote the {writer.frames} frames "
                                f"before it to {dst} (playable)", writer.frames)
    notes = [writer.audio_note] if writer.audio_note else []
    timings = {"decode": decode, **fc.timings, "encode": encode}
    return VideoStats(writer.frames, seconds, writer.frames / seconds if seconds > 0 else 0.0, info.width,
                      info.height, info.rate, writer.audio_stream is not None, notes, fc.cuts, stopped, timings)
