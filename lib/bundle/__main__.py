"""``python -m lib.bundle build|check <exp>`` (``python -m lib.kernel`` is the same command)."""

from __future__ import annotations

import argparse
import sys

from ..errors import ModelLoadError, ParameterError
from . import __doc__ as DOC  # the package docstring is the command's help
from .builder import build
from .checker import check, format_report
from .server import SERVER_WORKERS


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m lib.bundle", description=DOC,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write kernels/<exp>/")
    b.add_argument("exp")
    b.add_argument("--model", help="local model folder (overrides the params file's model)")
    b.add_argument("--params", help="params YAML (default: params/<exp>.yaml, else submissions/<exp>/run.json)")
    c = sub.add_parser("check", help="run kernels/<exp>/ the way the server will and give a verdict")
    c.add_argument("exp")
    c.add_argument("--data", help="flat folder of media (default: data/sample/test)")
    c.add_argument("--files", type=int, default=3000, help="test-set size to project (default %(default)s)")
    c.add_argument("--video-share", type=float, default=0.5, help="share of videos in that test set (default %(default)s)")
    c.add_argument("--max-size-mb", type=float, default=2048, help="bundle size limit (default %(default)s)")
    c.add_argument("--budget-h", type=float, default=3.0, help="server time budget in hours (default %(default)s)")
    c.add_argument("--model-speedup", type=float, default=1.0,
                   help="how much faster the server runs the model than this machine (default %(default)s: no guess)")
    c.add_argument("--server-workers", type=int, default=SERVER_WORKERS,
                   help="preprocessing processes on the server (default %(default)s: 8 cores - 1)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "build":
            print(f"built {build(args.exp, args.model, args.params)}")
            return
        r = check(args.exp, args.data, args.files, args.video_share, args.max_size_mb, args.budget_h * 3600,
                  model_speedup=args.model_speedup, server_workers=args.server_workers)
    except (ParameterError, ModelLoadError) as e:
        ap.exit(2, f"error: {e}\n")
    print(format_report(r))
    sys.exit(0 if r["verdict"] == "PASS" else 1)


if __name__ == "__main__":
    main()

