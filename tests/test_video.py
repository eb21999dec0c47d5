"""inference.video (clips in, clips out, stable colors), evaluation.video (flicker), evaluation.videoset
(test clips)."""
import hashlib
import json
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from core import hints as core_hints
from evaluation import video as vmetrics
from evaluation import videoset
from inference import video
from inference.colorizer import Colorizer
from loaders import cifar


class NoisyColorizer:
    """Stands in for inference.Colorizer: a color that follows the gray input plus noise drawn from the
    image's own bytes (the same frame always gets the same colors; a moved frame gets other noise:
    the flicker of a network that sees a shifted image). Records the hints it is given."""
    takes_hints = True
    square_view = False
    working_ab = Colorizer.working_ab   # the real one: this stands in for the network alone
    detail_view = staticmethod(lambda L, shape: None)   # no encoder detail

    def __init__(self, noise: float = 0.15, work=(16, 16)):
        self.noise, self.work = noise, work
        self.hints = []

    def working_shape(self, full_hw, long_side=None):
        return self.work

    def colorize(self, images, labels=None, hints=None, detail=None):
        assert images.dtype == np.uint8 and images.shape[1:3] == self.work
        self.hints.append(hints)
        seed = int.from_bytes(hashlib.sha256(images.tobytes()).digest()[:8], "little")
        rng = np.random.default_rng(seed)
        g = images.astype(np.float32) / 255
        out = np.stack([0.3 + 0.6 * g[..., 0], 0.2 + 0.5 * g[..., 1], 0.1 + 0.3 * g[..., 2]], -1)
        out += self.noise * (rng.random(images.shape[:3] + (1,), dtype=np.float32) - 0.5)
        return np.clip(out, 0, 1)


def pan_frames(w=64, h=48, n=12, photo="coffee", speed=3.0):
    """A pan over a scikit-image photo: (frames, affines)."""
    p = videoset.skimage_photo(photo)
    affines = videoset.pan_transforms(p.rgb.shape[:2], (w, h), n, speed)
    return [videoset.render(p.rgb, A, (w, h)) for A in affines], affines


def write_clip(path, frames, rate=24):
    with video.ClipWriter(path, frames[0].shape[1], frames[0].shape[0], Fraction(rate)) as writer:
        for f in frames:
            writer.write(f)
    return path


def write_with_audio(path, frames, codec, audio_codec, rate=24):
    """A clip with a 440 Hz sine as audio (mono, 48 kHz), written by PyAV directly."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as c:
        vs = c.add_stream(codec, rate=rate)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        a = c.add_stream(audio_codec, rate=48000)
        apts = 0
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in vs.encode(f):
                c.mux(p)
            while apts < (i + 1) * 48000 / rate:
                samples = (0.3 * np.sin(2 * np.pi * 440 * (apts + np.arange(960)) / 48000)).astype(np.float32)
                af = av.AudioFrame.from_ndarray(samples[None], format="fltp", layout="mono")
                af.sample_rate, af.pts = 48000, apts
                apts += 960
                for p in a.encode(af):
                    c.mux(p)
        for s in (vs, a):
            for p in s.encode():
                c.mux(p)
    return path


def count_frames(path):
    return sum(1 for _ in video.read_frames(path))


def audio_packets(path):
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None, 0
        s = c.streams.audio[0]
        return s.codec_context.name, sum(1 for p in c.demux(s) if p.dts is not None)


# ---- containers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".mov", ".avi", ".gif"])
@pytest.mark.parametrize("size", [(64, 48), (63, 47)])
def test_round_trip_keeps_size_frame_count_and_rate(tmp_path, suffix, size):
    rate = 25 if suffix == ".gif" else 24          # GIF delays are whole centiseconds: 24 fps is not one
    frames, _ = pan_frames(*size, n=9)
    src = write_clip(tmp_path / f"in{suffix}", frames, rate)
    stats = video.colorize_video(NoisyColorizer(), src, video.output_path(src, tmp_path / "out"))
    dst = tmp_path / "out" / f"in{suffix}"
    info = video.probe(dst)
    assert (info.width, info.height) == size and info.rate == rate
    assert count_frames(dst) == 9 == stats.frames
    assert (stats.width, stats.height, stats.rate) == (*size, rate)
    out = next(iter(video.read_frames(dst)))
    chroma = np.abs(out.astype(int) - out.mean(-1, keepdims=True)).mean()
    assert chroma > 3                                  # colorized, not passed through gray


def test_one_frame_clip(tmp_path):
    frames, _ = pan_frames(n=1)
    src = write_clip(tmp_path / "one.mp4", frames)
    stats = video.colorize_video(NoisyColorizer(), src, tmp_path / "one-out.mp4")
    assert stats.frames == 1 and count_frames(tmp_path / "one-out.mp4") == 1 and stats.cuts == []


@pytest.mark.parametrize("suffix,codec,audio_codec", [(".mp4", "libx264", "aac"), (".webm", "libvpx-vp9", "libopus")])
def test_audio_is_copied(tmp_path, suffix, codec, audio_codec):
    frames, _ = pan_frames(n=12)
    src = write_with_audio(tmp_path / f"a{suffix}", frames, codec, audio_codec)
    stats = video.colorize_video(NoisyColorizer(), src, tmp_path / f"b{suffix}")
    assert stats.audio and not stats.notes
    name, n = audio_packets(src)
    assert n > 5 and audio_packets(tmp_path / f"b{suffix}") == (name, n)   # every packet, same codec
    assert count_frames(tmp_path / f"b{suffix}") == 12


def test_gif_output_leaves_audio_out_with_a_note(tmp_path):
    frames, _ = pan_frames(n=4)
    src = write_with_audio(tmp_path / "a.mp4", frames, "libx264", "aac")
    stats = video.colorize_video(NoisyColorizer(), src, tmp_path / "b.gif")
    assert not stats.audio and "GIF has no audio" in stats.notes[0] and count_frames(tmp_path / "b.gif") == 4


# ---- damaged clips -------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_truncated_clip_gives_one_line_and_a_playable_partial_output(tmp_path, suffix):
    frames, _ = pan_frames(n=24, speed=2)
    rng = np.random.default_rng(0)                 # noise: every frame costs about as many bytes as the first,
    frames = [np.clip(f + rng.integers(-30, 30, f.shape), 0, 255).astype(np.uint8) for f in frames]
    src = write_clip(tmp_path / f"full{suffix}", frames)   # so half the file holds about half the frames
    data = src.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])        # mp4: the writer puts the index first (faststart)
    dst = tmp_path / f"out{suffix}"
    with pytest.raises(video.DamagedVideoError) as err:
        video.colorize_video(NoisyColorizer(), cut, dst)
    assert isinstance(err.value, cifar.DataError)   # the tools print DataError as one line
    message = str(err.value)
    assert "\n" not in message and f"wrote the {err.value.frames_written} frames" in message
    assert 0 < err.value.frames_written < 24
    assert count_frames(dst) == err.value.frames_written   # playable: every frame written decodes


def test_corrupt_bytes_stop_at_the_first_bad_frame(tmp_path):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(24)]   # noise: big packets
    src = tmp_path / "full.mkv"
    with av.open(str(src), "w") as c:          # x264's defaults (P frames with several references)
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    data = bytearray(src.read_bytes())
    for k in range(len(data) // 2, len(data) // 2 + 300):
        data[k] ^= 0x5A                              # damage in the middle: FFmpeg logs it and conceals it
    bad = tmp_path / "bad.mkv"
    bad.write_bytes(bytes(data))
    with pytest.raises(video.DamagedVideoError) as err:
        video.colorize_video(NoisyColorizer(), bad, tmp_path / "out.mkv")
    assert "\n" not in str(err.value) and "decoding error" in str(err.value)
    assert 0 < err.value.frames_written < 24
    assert count_frames(tmp_path / "out.mkv") == err.value.frames_written


def test_unreadable_clip_is_one_line_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\0\0\0\x20ftypisom" + bytes(100))
    with pytest.raises(video.VideoError) as err:
        video.colorize_video(NoisyColorizer(), bad, tmp_path / "out.mp4")
    assert "\n" not in str(err.value) and not (tmp_path / "out.mp4").exists()


# ---- stable colors -----------------------------------------------------------------------------------

def test_cut_resets_the_carried_colors():
    before, _ = pan_frames(n=6, photo="chelsea")
    after, _ = pan_frames(n=5, photo="rocket")
    fc = video.FrameColorizer(NoisyColorizer())
    out = [fc(f) for f in before + after]
    assert fc.cuts == [6]
    fresh = video.FrameColorizer(NoisyColorizer())
    out_fresh = [fresh(f) for f in after]
    for a, b in zip(out[6:], out_fresh):
        np.testing.assert_array_equal(a, b)       # nothing of the first shot's colors is carried over
    single = video.FrameColorizer(NoisyColorizer(), stabilize=False)
    np.testing.assert_array_equal(out[6], single(after[0]))   # the frame after a cut: as colorized alone
    per_frame = video.FrameColorizer(NoisyColorizer(), stabilize=False)
    assert not np.array_equal(out[3], [per_frame(f) for f in before][3])   # within a shot colors are carried


def test_no_cut_on_a_pan_or_a_zoom():
    frames, _ = pan_frames(96, 64, n=8, speed=4)
    fc = video.FrameColorizer(NoisyColorizer())
    for f in frames:
        fc(f)
    p = videoset.skimage_photo("astronaut")
    zoom = [videoset.render(p.rgb, A, (96, 64)) for A in videoset.zoom_transforms(p.rgb.shape[:2], (96, 64), 8, 1.5)]
    fz = video.FrameColorizer(NoisyColorizer())
    for f in zoom:
        fz(f)
    assert fc.cuts == [] and fz.cuts == []


def test_stabilization_lowers_known_motion_flicker():
    frames, affines = pan_frames(128, 96, n=12, speed=4)
    meta = {"cuts": [], "affines": affines}
    results = {}
    for stabilize in (False, True):
        fc = video.FrameColorizer(NoisyColorizer(noise=0.3), stabilize=stabilize)
        results[stabilize] = vmetrics.evaluate_clip((fc(f) for f in frames), frames, meta)
    assert results[False]["excess_flicker"] > 0.3                     # the stand-in flickers
    assert results[True]["excess_flicker"] < 0.5 * results[False]["excess_flicker"]
    assert results[True]["warp_error"] < results[False]["warp_error"]


def test_points_are_carried_along_the_motion_and_dropped_at_a_cut():
    frames, _affines = pan_frames(96, 64, n=5, speed=4)
    fake = NoisyColorizer()
    start = core_hints.point(60, 30, (200, 40, 40))
    fc = video.FrameColorizer(fake, points=[start])
    for f in frames:
        fc(f)
    # the pan moves the content left by 4 px per frame: the point should follow it (within a pixel)
    (moved,) = fc.points
    assert abs(moved.x - (60 - 4 * 4)) < 1.0 and abs(moved.y - 30) < 1.0
    # every frame was given the point as a hint
    assert all(h is not None and h.local[..., 2].sum() == 1 for h in fake.hints)
    other, _ = pan_frames(96, 64, n=2, photo="rocket")
    fc(other[0])
    assert fc.cuts == [5] and fc.points == () and fake.hints[-1] is None


def test_reference_applies_to_every_frame():
    frames, _ = pan_frames(n=3)
    fake = NoisyColorizer()
    fc = video.FrameColorizer(fake, reference=frames[0])
    for f in frames:
        fc(f)
    assert len(fake.hints) == 3 and all(h.reference[0, -1] == 1 for h in fake.hints)


def test_progress_is_reported_per_frame_and_at_the_end(tmp_path):
    frames, _ = pan_frames(n=5)
    src = write_clip(tmp_path / "p.mp4", frames)
    calls = []
    video.colorize_video(NoisyColorizer(), src, tmp_path / "q.mp4",
                         progress=lambda done, total, elapsed, final=False: calls.append((done, total, final)))
    assert [c[0] for c in calls] == [1, 2, 3, 4, 5, 5] and calls[-1] == (5, 5, True)


def test_progress_line_says_fps_and_time_left():
    import io
    out = io.StringIO()
    line = video.ProgressLine("clip.mp4", out, interval=0)
    line(10, 40, 2.0)
    line(40, 40, 8.0, final=True)
    text = out.getvalue()
    assert "10/40 frames" in text and "5.0 fps" in text and "0:06 left" in text and "0:08 in all" in text


def test_stop_request_ends_after_the_frame_with_a_playable_clip(tmp_path):
    frames, _ = pan_frames(n=8)
    src = write_clip(tmp_path / "s.mp4", frames)

    class Stop:
        requested = True
    stats = video.colorize_video(NoisyColorizer(), src, tmp_path / "t.mp4", stop=Stop())
    assert stats.stopped and stats.frames == 1 and count_frames(tmp_path / "t.mp4") == 1


def test_is_video_and_output_path(tmp_path):
    from PIL import Image
    still, anim = tmp_path / "still.gif", tmp_path / "anim.gif"
    Image.new("RGB", (8, 8)).save(still)
    Image.new("RGB", (8, 8)).save(anim, save_all=True, append_images=[Image.new("RGB", (8, 8), "red")])
    assert video.is_video(anim) and not video.is_video(still) and video.is_video(tmp_path / "x.MKV")
    assert not video.is_video(tmp_path / "x.png")
    assert video.output_path(tmp_path / "Clip.MOV", tmp_path / "o") == tmp_path / "o" / "Clip.mov"


# ---- the metrics and the test clips -----------------------------------------------------------------

def test_known_motion_flicker_of_the_original_is_near_zero_and_sees_color_jumps():
    frames, affines = pan_frames(96, 64, n=6, speed=4)
    meta = {"cuts": [], "affines": affines}
    r = vmetrics.evaluate_clip(frames, frames, meta)
    assert r["excess_flicker"] == 0 and r["flicker_original"] < 1.5 and r["psnr"] == 100
    rng = np.random.default_rng(0)
    jumpy = [np.clip(f.astype(int) + rng.integers(-20, 20, 3), 0, 255).astype(np.uint8) for f in frames]
    assert vmetrics.evaluate_clip(jumpy, frames, meta)["excess_flicker"] > 3


def test_videoset_clip_and_its_transforms_agree(tmp_path):
    plan = videoset.clip_plan((96, 64), 6, photoset=None)
    assert set(plan) == {"pan", "zoom", "cut"}
    path = videoset.write_clip("cut", plan["cut"], tmp_path, (96, 64), 24)
    meta = videoset.load_meta(path)
    assert meta["cuts"] == [3] and meta["frames"] == 6 and set(meta["photos"]) == {"chelsea", "rocket"}
    assert json.loads(path.with_suffix(".json").read_text())["photos"]["rocket"]["license"] == "public domain"
    decoded = list(video.read_frames(path))
    assert len(decoded) == 6
    r = vmetrics.evaluate_clip(decoded, decoded, meta, warping=False)
    # the transforms are exact: the decoded original's own known-motion flicker stays small
    assert r["flicker_original"] < 2.0 and r["psnr_before_cut"] == 100


# ---- the shipped model -----------------------------------------------------------------------------

def test_shipped_run_colorizes_a_tiny_clip(tmp_path):
    from inference.pretrained import load_run
    colorizer = load_run("effnet_unet")
    frames, _ = pan_frames(64, 36, n=4)
    src = write_clip(tmp_path / "tiny.mp4", frames)
    stats = video.colorize_video(colorizer, src, tmp_path / "tiny-out.mp4")
    out = list(video.read_frames(tmp_path / "tiny-out.mp4"))
    assert stats.frames == 4 and len(out) == 4 and out[0].shape == (36, 64, 3)
    chroma = np.abs(out[0].astype(int) - out[0].mean(-1, keepdims=True)).mean()
    assert chroma > 1


def test_a_reference_is_matched_as_for_photos_only_without_points():
    frames, _ = pan_frames(n=2)
    ref = core_hints.reference(frames[0])
    fake = NoisyColorizer()
    fc = video.FrameColorizer(fake, reference=ref)
    fc(frames[0])
    assert fake.hints[-1].reference_ab is not None and fake.hints[-1].reference_ab[0] is ref.pixels
    with_point = video.FrameColorizer(fake, points=[core_hints.point(10, 10, (200, 40, 40))], reference=ref)
    with_point(frames[0])
    assert fake.hints[-1].reference_ab is None and fake.hints[-1].reference[0, -1] == 1
    only_dist = video.FrameColorizer(fake, reference=ref.distribution)
    only_dist(frames[0])
    assert fake.hints[-1].reference_ab is None


# ---- the benchmark's section -----------------------------------------------------------------------

def test_bench_video_section_runs_with_the_smoke_settings(tmp_path):
    from benchmarks import video as bench_video
    from benchmarks.settings import SMOKE, Context

    ctx = Context(SMOKE, (), (), ["--smoke"], tmp_path)
    rows = bench_video.bench_video(ctx)
    assert [(r.item.split(":")[0], r.setting.split(",")[0]) for r in rows] == [
        ("480p", "stable"), ("480p", "frame"), ("1080p", "stable"), ("1080p", "frame")]
    assert all(r.result.endswith(" fps") and float(r.result.split()[0]) > 0 and "peak RSS" in r.notes for r in rows)
    assert [line.split(":")[0] for line in ctx.summary] == ["video 480p (96x54)", "video 1080p (128x72)",
                                                            "video memory"]
    assert all(line.endswith(("PASS", "FAIL")) for line in ctx.summary)
    assert ctx.summary[-1].endswith("PASS")      # the child's own peak (not the test process's, inherited)
    w, h, n = SMOKE.video_clips[0][1:]
    assert sum(1 for _ in video.read_frames(tmp_path / "video" / f"pan-{w}x{h}-{n}.mp4")) == n
