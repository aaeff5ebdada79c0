"""Generate the procedural textures in ``models/textures/`` (run from anywhere).

Every texture vrbalance ships is made here from seeded numpy noise, so the
repository holds no downloaded or third-party assets and the PNGs can be
regenerated bit-for-bit::

    python tools/make_models.py            # rewrite models/textures/*.png
    python tools/make_models.py --check    # exit 1 if the committed PNGs differ

All scene geometry (ground, trees, benches, lamps, steps, rails, people) is
built at load time in code (``vrbalance/world/geometry.py`` and the scene
modules), so no mesh files are stored. Textures tile seamlessly (the noise is
periodic) because the ground repeats them every few metres.
"""

from __future__ import annotations

import argparse
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

OUT_DIR = Path(__file__).resolve().parent.parent / "models" / "textures"
SIZE = 256  # px; small so the repository stays light and llvmpipe samples fast


def png_bytes(rgb: NDArray[np.uint8]) -> bytes:
    """Encode an 8-bit RGB PNG with nothing but zlib (deterministic bytes)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    return png


def periodic_noise(rng: np.random.Generator, size: int, octaves: tuple[int, ...]) -> NDArray:
    """Tileable value noise in [0, 1]: random low-frequency grids upsampled by FFT (periodic)."""
    total = np.zeros((size, size))
    weight = 0.0
    for i, cells in enumerate(octaves):
        coarse = rng.standard_normal((cells, cells))
        spec = np.fft.fft2(coarse)
        big = np.zeros((size, size), dtype=complex)
        half = cells // 2
        big[:half, :half] = spec[:half, :half]
        big[:half, -half:] = spec[:half, -half:]
        big[-half:, :half] = spec[-half:, :half]
        big[-half:, -half:] = spec[-half:, -half:]
        layer = np.real(np.fft.ifft2(big))
        layer = (layer - layer.mean()) / (layer.std() + 1e-12)
        amp = 0.6**i
        total += amp * layer
        weight += amp
    total /= weight
    return np.clip(0.5 + 0.25 * total, 0.0, 1.0)


def _colourise(t: NDArray, dark: tuple[int, int, int], light: tuple[int, int, int]) -> NDArray:
    d, li = np.array(dark, float), np.array(light, float)
    return np.clip(d + (li - d) * t[..., None], 0, 255).astype(np.uint8)


def grass(rng: np.random.Generator) -> NDArray[np.uint8]:
    """Lawn: mottled greens with fine blade speckle."""
    n = periodic_noise(rng, SIZE, (8, 32, 128))
    speck = rng.random((SIZE, SIZE)) ** 3 * 0.35
    return _colourise(np.clip(n + speck - 0.1, 0, 1), (38, 82, 26), (120, 170, 60))


def gravel(rng: np.random.Generator) -> NDArray[np.uint8]:
    """Path: light sandy gravel with pebbles."""
    n = periodic_noise(rng, SIZE, (16, 64, 128))
    pebbles = (rng.random((SIZE, SIZE)) > 0.93) * rng.random((SIZE, SIZE)) * 0.5
    return _colourise(np.clip(n * 0.8 + pebbles, 0, 1), (130, 115, 90), (225, 210, 180))


def stone(rng: np.random.Generator) -> NDArray[np.uint8]:
    """Stone steps and walls: grey granite grain, no joints (steps supply their own edges)."""
    n = periodic_noise(rng, SIZE, (8, 64, 128))
    grain = rng.random((SIZE, SIZE)) * 0.25
    return _colourise(np.clip(n * 0.85 + grain, 0, 1), (105, 102, 98), (200, 196, 188))


def paving(rng: np.random.Generator) -> NDArray[np.uint8]:
    """Plaza paving: 4 x 4 slabs per tile with dark joints and per-slab tint."""
    n = periodic_noise(rng, SIZE, (16, 64))
    slab = SIZE // 4
    tint = rng.uniform(0.85, 1.1, (4, 4))
    t = n * np.kron(tint, np.ones((slab, slab)))
    img = _colourise(np.clip(t, 0, 1), (120, 110, 100), (215, 200, 180)).astype(float)
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    joint = ((x % slab) < 3) | ((y % slab) < 3)
    img[joint] *= 0.45
    return img.astype(np.uint8)


TEXTURES: dict[str, Callable[[np.random.Generator], NDArray[np.uint8]]] = {
    "grass.png": grass,
    "gravel.png": gravel,
    "stone.png": stone,
    "paving.png": paving,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder")
    args = parser.parse_args(argv)
    if not args.check:
        args.out.mkdir(parents=True, exist_ok=True)
    stale = []
    for i, (name, make) in enumerate(TEXTURES.items()):
        rng = np.random.default_rng(np.random.SeedSequence([2026, i]))
        target = args.out / name
        data = png_bytes(make(rng))
        if args.check:
            if not (target.is_file() and target.read_bytes() == data):
                stale.append(name)
        else:
            target.write_bytes(data)
            print(f"wrote {target} ({target.stat().st_size} bytes)")
    if stale:
        print(f"out of date: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
