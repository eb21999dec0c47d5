"""A local web page to colorize photos with the trained runs: python demo.py, then open the printed address.

Upload one or several photos (or tick bundled examples), choose the model and run (the latest run
of each model, the runs given with --run-dir, and the shipped pretrained runs when there are any),
and get [gray | colorized] side by side at the photo's full resolution, with a download link for
the colorized image. It colorizes exactly as colorize.py does (inference.photos). Oversized or
invalid uploads are refused with a message on the page.

Or upload a clip (mp4, webm, mov, mkv, avi, animated GIF; at most --max-video-frames frames): it is
colorized in the background (inference.video, stable colors), the page shows its progress and then
plays the result, with a download link.

With a run trained with color hints (train.py --hints), each result also gets an editor: click the
colorized image to add a colored point (its color picker starts at the predicted color), remove
points, add a reference image; the photo is colorized again after each change, in place.

Serves on 127.0.0.1 (this computer only) unless --host says otherwise. --port 0 picks a free port.
Stop with Ctrl-C.
"""
from __future__ import annotations

import cli  # noqa: F401  (first: TensorFlow's environment, the filter of its start-up log)

# isort: split

import argparse
import atexit
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

from cli.errors import run_main
from cli.options import add_runtime_args
from core import runs
from loaders.cifar import MAX_PIXELS
from serving.catalog import find_runs


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: %(default)s, this computer only)")
    p.add_argument("--port", type=int, default=7860, help="port (default: %(default)s; 0: any free port)")
    p.add_argument("--runs-dir", type=Path, default=runs.RUNS_DIR, help="where to look for runs (default: runs/)")
    p.add_argument("--run-dir", type=Path, action="append", default=[], help="also offer this run (repeatable)")
    p.add_argument("--max-upload-mb", type=float, default=64,
                   help="largest upload, all images together (default: %(default)s)")
    p.add_argument("--max-files", type=int, default=16, help="most images per upload (default: %(default)s)")
    p.add_argument("--max-video-frames", type=int, default=600,
                   help="longest clip, in frames: longer ones are refused (default: %(default)s)")
    add_runtime_args(p, verbose=False)
    args = p.parse_args(argv)
    if args.max_upload_mb <= 0 or args.max_files < 1 or args.max_video_frames < 1:
        p.error("--max-upload-mb, --max-files and --max-video-frames must be positive")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    for run_dir in args.run_dir:
        runs.load_config(run_dir)   # a wrong --run-dir is one error line now, not a failure on the page later
    choices = find_runs(args.runs_dir, args.run_dir)
    if not choices:
        raise runs.RunError(f"no run to offer: nothing under {args.runs_dir}; train one (python train.py -m unet) "
                            "or pass --run-dir")
    # As colorize.py: Pillow refuses images above twice this before decoding, photos.open_image above it.
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    work_dir = Path(tempfile.mkdtemp(prefix="colorize-demo-"))
    atexit.register(shutil.rmtree, work_dir, True)
    from werkzeug.serving import make_server  # the web stack (Flask), only now that the runs are found

    from serving.webapp import create_app
    app = create_app(choices, work_dir, args.max_upload_mb, args.max_files, args.runtime, args.max_video_frames)
    server = make_server(args.host, args.port, app, threaded=True)
    host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    for c in choices:
        print(f"offering {c.title}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {args.host}: other computers can reach this page")
    print(f"serving on http://{host}:{server.server_port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
