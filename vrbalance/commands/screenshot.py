"""``vrbalance screenshot``: render one frame of a scene at a level to a PNG (no display needed)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from vrbalance.errors import ConfigError

log = logging.getLogger(__name__)

#: Frames rendered before the saved one, so distractors and sway are under way
#: (at 1/60 s each: half a second of scene time).
WARMUP_FRAMES = 30


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "screenshot",
        help="render one frame of a scene at a level to a PNG (offscreen)",
        description=(
            "Render a scene (park, stairs, crowd) at a level (from 1) offscreen and save "
            "the frame as a PNG. The view is the scene's standing view from the patient's "
            "eyes; --overlay adds the operator overlay."
        ),
    )
    parser.add_argument("--scene", required=True, help="scene name or path of a scene TOML")
    parser.add_argument("--level", type=int, default=1, help="level, from 1 (default 1)")
    parser.add_argument("--out", type=Path, required=True, help="PNG file to write")
    parser.add_argument("--size", default="1280x720", help="image size WxH (default 1280x720)")
    parser.add_argument(
        "--overlay", action="store_true", help="include the operator overlay (desktop view)"
    )
    parser.add_argument(
        "--calm", action="store_true", help="render the calm (still, level-horizon) scene"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from vrbalance.commands.demo import parse_size
    from vrbalance.world.app import WorldApp

    size = parse_size(args.size)
    out: Path = args.out
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out: expected a .png file, got {str(out)!r}")
    with WorldApp(
        output="offscreen", size_px=size, scene=args.scene, level=args.level, overlay=args.overlay
    ) as app:
        if args.calm:
            app.calm()
        app.step_frames(WARMUP_FRAMES)
        app.screenshot(out)
        title, level, top = app.scene_def.title, app.level, app.scene_def.n_levels
    print(f"wrote {out} ({title}, level {level}/{top}, {size[0]}x{size[1]})")
    return 0
