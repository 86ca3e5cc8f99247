"""Label layouts of the synthetic road scenes, drawn with vectorised numpy.

The layout mimics what makes real road scenes hard for a band-limited decoder: large
regions with irregular or slanted boundaries (a skyline over buildings, a road whose edges
converge to a vanishing point), small objects (cars, signs: a few pixels up to about a
tenth of the image) and thin structures (poles and lane markings 1-3 px wide). Class ``c``
plays role ``ROLES[c]``; classes beyond the named roles are extra objects of the kinds in
``EXTRA_KINDS`` (disc, box, thin line, blob), so any ``K >= 2`` works. Roles whose class
does not exist for a given ``K`` are not drawn.
"""

from __future__ import annotations

import math

import numpy as np

ROLES: tuple[str, ...] = (
    "sky", "road", "building", "pole", "car", "sign", "vegetation", "pavement", "lane_marking", "pedestrian",
)
EXTRA_KINDS: tuple[str, ...] = ("disc", "box", "line", "blob")


def class_names(num_classes: int) -> list[str]:
    """Names of the ``num_classes`` synthetic classes, in class-index order."""
    extra = [f"{EXTRA_KINDS[(c - len(ROLES)) % len(EXTRA_KINDS)]}_{c}" for c in range(len(ROLES), num_classes)]
    return list(ROLES[:num_classes]) + extra


def _box(lab: np.ndarray, y0: float, y1: float, x0: float, x1: float, value: int) -> None:
    h, w = lab.shape
    r0, r1 = max(0, int(round(y0))), min(h, int(round(y1)))
    c0, c1 = max(0, int(round(x0))), min(w, int(round(x1)))
    if r1 > r0 and c1 > c0:
        lab[r0:r1, c0:c1] = value


def _blob(lab: np.ndarray, cy: float, cx: float, ry: float, rx: float, value: int,
          rng: np.random.Generator, wobble: float = 0.25) -> None:
    """An ellipse whose radius varies with angle: a tree crown or bush, not a perfect shape."""
    h, w = lab.shape
    reach = 1.0 + wobble + 0.1
    r0, r1 = max(0, math.floor(cy - ry * reach)), min(h, math.ceil(cy + ry * reach) + 1)
    c0, c1 = max(0, math.floor(cx - rx * reach)), min(w, math.ceil(cx + rx * reach) + 1)
    if r1 <= r0 or c1 <= c0:
        return
    dy = (np.arange(r0, r1, dtype=np.float32)[:, None] - cy) / ry
    dx = (np.arange(c0, c1, dtype=np.float32)[None, :] - cx) / rx
    theta = np.arctan2(dy, dx)
    k, phase, phase2 = int(rng.integers(3, 7)), rng.uniform(0, 2 * np.pi), rng.uniform(0, 2 * np.pi)
    limit = 1.0 + wobble * np.sin(k * theta + phase) + 0.1 * np.sin(2 * k * theta + phase2)
    region = lab[r0:r1, c0:c1]
    region[np.hypot(dy, dx) <= limit] = value


def _disc(lab: np.ndarray, cy: float, cx: float, r: float, value: int) -> None:
    h, w = lab.shape
    r0, r1 = max(0, math.floor(cy - r)), min(h, math.ceil(cy + r) + 1)
    c0, c1 = max(0, math.floor(cx - r)), min(w, math.ceil(cx + r) + 1)
    if r1 <= r0 or c1 <= c0:
        return
    dy = np.arange(r0, r1, dtype=np.float32)[:, None] - cy
    dx = np.arange(c0, c1, dtype=np.float32)[None, :] - cx
    region = lab[r0:r1, c0:c1]
    region[dy * dy + dx * dx <= r * r] = value


def draw_scene(height: int, width: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one scene's ``uint8`` label map (painter's order: later layers occlude earlier ones)."""
    role = {name: c for c, name in enumerate(ROLES[:num_classes])}
    h, w = height, width
    small = min(h, w)
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    lab = np.full((h, w), role.get("building", role["sky"]), dtype=np.uint8)

    # Skyline: rooftops (piecewise constant) plus a gentle undulation.
    base = rng.uniform(0.25, 0.4) * h
    segments = int(rng.integers(3, 9))
    cuts = np.sort(rng.uniform(0, w, segments - 1))
    heights = rng.uniform(-0.12, 0.12, segments) * h
    cols = np.arange(w)
    skyline = (base + heights[np.searchsorted(cuts, cols)]
               + 0.02 * h * np.sin(2 * np.pi * cols / w * rng.uniform(1, 4) + rng.uniform(0, 2 * np.pi)))
    lab[yy < skyline[None, :].astype(np.float32)] = role["sky"]

    # Road geometry: edges converge to a vanishing point (vx, vy).
    vy, vx = rng.uniform(0.42, 0.6) * h, rng.uniform(0.3, 0.7) * w
    spread = rng.uniform(0.45, 0.9) * w / max(h - 1 - vy, 1.0)  # road half-width per row below vy
    depth = yy - vy
    if "vegetation" in role:
        for _ in range(int(rng.integers(1, 4))):
            ry = rng.uniform(0.05, 0.14) * small
            _blob(lab, rng.uniform(base - 0.05 * h, vy + 0.05 * h), rng.uniform(0, w), ry,
                  ry * rng.uniform(0.8, 1.6), role["vegetation"], rng)
    if "pavement" in role:
        lab[(depth > 0) & (np.abs(xx - vx) <= depth * spread * rng.uniform(1.25, 1.5))] = role["pavement"]
    lab[(depth > 0) & (np.abs(xx - vx) <= depth * spread)] = role["road"]

    if "lane_marking" in role:  # dashed lines 1-3 px wide, wider and longer towards the camera
        rows = np.arange(math.ceil(vy + 1), h)
        d = rows - vy
        for _ in range(int(rng.integers(1, 3))):
            centre = vx + d * spread * rng.uniform(-0.5, 0.5)
            lw = 1 + np.round(2 * d / max(h - 1 - vy, 1.0)).astype(np.int64)
            dashed = (np.floor(np.sqrt(d) * rng.uniform(0.9, 1.6) + rng.uniform(0, 2)) % 2) == 0
            x0 = np.floor(centre - lw / 2 + 0.5)[:, None]
            on = dashed[:, None] & (xx >= x0) & (xx < x0 + lw[:, None])
            lab[rows] = np.where(on, role["lane_marking"], lab[rows])

    if "car" in role:
        for _ in range(int(rng.integers(2, 6))):
            t = rng.uniform(0.2, 1.0)
            bottom = vy + t * (h - 1 - vy)
            cx = vx + rng.uniform(-0.8, 0.8) * t * (h - 1 - vy) * spread
            cw = max(2.0, t * rng.uniform(0.06, 0.16) * w)
            ch = max(2.0, cw * rng.uniform(0.45, 0.75))
            _box(lab, bottom - ch, bottom, cx - cw / 2, cx + cw / 2, role["car"])
    if "pedestrian" in role:
        for _ in range(int(rng.integers(1, 4))):
            t = rng.uniform(0.1, 1.0)
            foot = vy + t * (h - 1 - vy)
            ph = max(3.0, t * rng.uniform(0.08, 0.18) * h)
            cx = rng.uniform(0, w)
            _box(lab, foot - ph, foot, cx - max(1.0, 0.15 * ph), cx + max(1.0, 0.15 * ph), role["pedestrian"])
    tops = []
    if "pole" in role:
        for _ in range(int(rng.integers(1, 4))):
            x0, pw = int(rng.integers(0, w)), int(rng.integers(1, 4))
            top = max(0.0, float(skyline.min()) - rng.uniform(0.0, 0.15) * h)
            foot = vy + rng.uniform(0.0, 0.6) * (h - 1 - vy)
            _box(lab, top, foot, x0, x0 + pw, role["pole"])
            tops.append((top, x0 + pw / 2))
    if "sign" in role:
        for j in range(int(rng.integers(1, 4))):
            r = rng.uniform(2.0, max(2.5, 0.055 * small))
            cy, cx = tops[j] if j < len(tops) else (rng.uniform(0.2, 0.6) * h, rng.uniform(0, w))
            _disc(lab, cy + r, cx, r, role["sign"])

    for c in range(len(ROLES), num_classes):
        kind = EXTRA_KINDS[(c - len(ROLES)) % len(EXTRA_KINDS)]
        for _ in range(int(rng.integers(1, 3))):
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            if kind == "disc":
                _disc(lab, cy, cx, rng.uniform(1.5, max(2.0, 0.06 * small)), c)
            elif kind == "box":
                bh, bw = rng.uniform(2, max(3.0, 0.12 * h)), rng.uniform(2, max(3.0, 0.12 * w))
                _box(lab, cy - bh / 2, cy + bh / 2, cx - bw / 2, cx + bw / 2, c)
            elif kind == "line":
                thick, length = int(rng.integers(1, 4)), rng.uniform(0.1, 0.5)
                if rng.random() < 0.5:
                    _box(lab, cy, cy + thick, cx - length * w / 2, cx + length * w / 2, c)
                else:
                    _box(lab, cy - length * h / 2, cy + length * h / 2, cx, cx + thick, c)
            else:
                ry = rng.uniform(0.04, 0.12) * small
                _blob(lab, cy, cx, ry, ry * rng.uniform(0.7, 1.5), c, rng)
    return lab
