"""Blender-format scenes: an analytic scene generator and a loader.

The Blender ("NeRF synthetic") format is a folder with ``transforms_{train,val,test}.json``
(``camera_angle_x`` and per frame a ``file_path`` plus a 4x4 camera-to-world
``transform_matrix``, camera looking along -z with y up) and RGBA PNGs. Images are
composited on white. Optional extra keys ``near``, ``far`` and ``aabb`` (written by
:func:`generate_scene`) bound the rays; plain Blender scenes use ``near=2, far=6``.

Loading is bounded (:mod:`inrkit.limits`): the JSON goes through ``parse_json``; at most
``MAX_SCENE_FRAMES`` frames per split; every frame's ``file_path`` must lead to a regular file inside
the scene folder (after resolving ``..`` and symlinks) and appear once per split; image sizes are
read from the headers and checked (per image, and ``MAX_SCENE_PIXELS`` plus the decode-ratio rule
for all frames together) before any image is decoded.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import MAX_SCENE_FRAMES, MAX_SCENE_PIXELS, decode_budget, inside_folder
from inrkit.signals.readers import file_size, open_image, read_json_file
from inrkit.utils import atomic_path, to_uint8, write_json

SPLITS = ("train", "val", "test")
LIGHT_DIR = np.array([0.45, -0.35, 0.82]) / np.linalg.norm([0.45, -0.35, 0.82])


# --------------------------------------------------------------------------- cameras
def look_at(position: np.ndarray, target: np.ndarray | None = None,
            up: np.ndarray | None = None) -> np.ndarray:
    """Camera-to-world matrix (Blender convention: the camera looks along its -z, y up)."""
    target = np.zeros(3) if target is None else np.asarray(target, float)
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, float)
    z_axis = np.asarray(position, float) - target
    z_axis /= np.linalg.norm(z_axis)
    x_axis = np.cross(up, z_axis)
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x_axis, y_axis, z_axis, position
    return c2w


def sphere_pose(azimuth_deg: float, elevation_deg: float, radius: float) -> np.ndarray:
    """Camera on a sphere around the origin, looking at it (z is up)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    pos = radius * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    return look_at(pos)


def pixel_rays(c2w: np.ndarray, height: int, width: int, focal: float) -> tuple[np.ndarray, np.ndarray]:
    """Rays through pixel centres: ``(origins, directions)`` each ``[..., H, W, 3]``.

    Directions are not normalised: their camera-space z is -1 (as in NeRF), so a
    depth ``t`` along a ray is the distance along the camera axis.
    """
    c2w = np.asarray(c2w, np.float64)
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5, indexing="xy")
    dirs = np.stack([(u - 0.5 * width) / focal, -(v - 0.5 * height) / focal, -np.ones_like(u)], -1)
    rot = c2w[..., None, None, :3, :3]
    rays_d = np.sum(dirs[..., None, :] * rot, -1)
    rays_o = np.broadcast_to(c2w[..., None, None, :3, 3], rays_d.shape)
    return rays_o, rays_d


def aabb_near_far(rays_o: np.ndarray, rays_d: np.ndarray, aabb: np.ndarray,
                  near: float, far: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-ray ``[near, far]`` clipped to an axis-aligned box; rays that miss get ``near == far``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / np.where(np.abs(rays_d) < 1e-12, 1e-12, rays_d)
        t0, t1 = (aabb[0] - rays_o) * inv, (aabb[1] - rays_o) * inv
    t_lo = np.maximum(np.minimum(t0, t1).max(-1), near)
    t_hi = np.minimum(np.maximum(t0, t1).min(-1), far)
    t_hi = np.maximum(t_hi, t_lo)
    return t_lo, t_hi


# --------------------------------------------------------------------------- analytic scene
def _scene_objects(rng: np.random.Generator) -> list[dict]:
    """A grey plate with a red and a blue sphere, a green box and a yellow tower on it."""
    jitter = lambda s: rng.uniform(-s, s, 3) * np.array([1.0, 1.0, 0.0])  # noqa: E731
    col = lambda c: np.clip(np.asarray(c) + rng.uniform(-0.06, 0.06, 3), 0, 1)  # noqa: E731
    return [
        {"type": "box", "center": np.array([0.0, 0.0, -0.55]), "half": np.array([1.05, 1.05, 0.06]),
         "angle": 0.0, "color": col([0.62, 0.62, 0.66])},
        {"type": "sphere", "center": np.array([-0.42, -0.3, -0.07]) + jitter(0.1), "radius": 0.42,
         "color": col([0.85, 0.15, 0.12])},
        {"type": "sphere", "center": np.array([0.5, -0.45, -0.24]) + jitter(0.08), "radius": 0.25,
         "color": col([0.15, 0.3, 0.9])},
        {"type": "box", "center": np.array([0.35, 0.45, -0.21]) + jitter(0.08), "half": np.array([0.28, 0.28, 0.28]),
         "angle": float(rng.uniform(0.2, 0.9)), "color": col([0.15, 0.72, 0.25])},
        {"type": "box", "center": np.array([-0.45, 0.55, 0.0]) + jitter(0.05), "half": np.array([0.13, 0.13, 0.49]),
         "angle": float(rng.uniform(0.0, 0.7)), "color": col([0.95, 0.8, 0.1])},
    ]


def _rotz(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _intersect(obj: dict, o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest positive hit distance (inf if none) and unit normal, for unit directions ``d``."""
    if obj["type"] == "sphere":
        oc = o - obj["center"]
        b = np.sum(oc * d, -1)
        disc = b * b - (np.sum(oc * oc, -1) - obj["radius"] ** 2)
        sq = np.sqrt(np.maximum(disc, 0.0))
        t = np.where(-b - sq > 1e-6, -b - sq, -b + sq)
        t = np.where((disc > 0) & (t > 1e-6), t, np.inf)
        normal = (o + t[..., None] * d - obj["center"]) / obj["radius"]
        return t, np.nan_to_num(normal)
    rot = _rotz(obj["angle"])
    lo, ld = (o - obj["center"]) @ rot, d @ rot          # into the box frame (rot^T applied per row)
    inv = 1.0 / np.where(np.abs(ld) < 1e-12, 1e-12, ld)
    t0, t1 = (-obj["half"] - lo) * inv, (obj["half"] - lo) * inv
    t_near, t_far = np.minimum(t0, t1).max(-1), np.maximum(t0, t1).min(-1)
    t = np.where(t_near > 1e-6, t_near, t_far)
    t = np.where((t_far >= t_near) & (t > 1e-6), t, np.inf)
    p = (lo + np.where(np.isfinite(t), t, 0.0)[..., None] * ld) / obj["half"]
    axis = np.argmax(np.abs(p), -1)
    local_n = np.zeros_like(p)
    np.put_along_axis(local_n, axis[..., None], np.sign(np.take_along_axis(p, axis[..., None], -1)), -1)
    return t, local_n @ rot.T


def trace(objects: list[dict], o: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shade rays ``o + t d`` (``d`` unit): ``(rgb [..., 3], hit [...])`` with shadows and speculars."""
    best_t = np.full(o.shape[:-1], np.inf)
    normal = np.zeros(o.shape)
    color = np.zeros(o.shape)
    for obj in objects:
        t, n = _intersect(obj, o, d)
        closer = t < best_t
        best_t = np.where(closer, t, best_t)
        normal = np.where(closer[..., None], n, normal)
        color = np.where(closer[..., None], obj["color"], color)
    hit = np.isfinite(best_t)
    p = o + np.where(hit, best_t, 0.0)[..., None] * d + 1e-4 * normal
    lit = np.ones(hit.shape, bool)
    light = np.broadcast_to(LIGHT_DIR, p.shape)
    for obj in objects:
        lit &= ~np.isfinite(_intersect(obj, p, light)[0])
    diffuse = np.clip(np.sum(normal * LIGHT_DIR, -1), 0.0, None) * lit
    reflect = d - 2.0 * np.sum(d * normal, -1, keepdims=True) * normal
    spec = (np.clip(np.sum(reflect * LIGHT_DIR, -1), 0.0, None) ** 24) * lit
    rgb = color * (0.3 + 0.7 * diffuse[..., None]) + 0.35 * spec[..., None]
    return np.clip(rgb, 0.0, 1.0) * hit[..., None], hit


def render_analytic(objects: list[dict], c2w: np.ndarray, size: int, focal: float, supersample: int = 2) -> np.ndarray:
    """Render the analytic scene to straight-alpha RGBA ``uint8 [size, size, 4]``."""
    s = supersample
    o, d = pixel_rays(c2w, size * s, size * s, focal * s)
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    rgb, hit = trace(objects, o, d)
    rgb = rgb.reshape(size, s, size, s, 3).mean((1, 3))
    alpha = hit.reshape(size, s, size, s).mean((1, 3))
    straight = np.where(alpha[..., None] > 0, rgb / np.maximum(alpha[..., None], 1e-8), 0.0)
    rgba = np.concatenate([straight, alpha[..., None]], -1)
    return to_uint8(rgba)


def _camera_poses(n_train: int, n_test: int, radius: float, rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    golden = math.pi * (3.0 - math.sqrt(5.0))
    offset = rng.uniform(0, 2 * math.pi)
    train = []
    for k in range(n_train):
        z = 0.12 + 0.8 * (k + 0.5) / n_train           # sin(elevation): about 7 to 64 degrees
        az = math.degrees(offset + golden * k)
        train.append(sphere_pose(az, math.degrees(math.asin(z)), radius))
    base = math.degrees(offset)
    test = [sphere_pose(base + 360.0 * (k + 0.5) / n_test, 30.0, radius) for k in range(n_test)]
    val = [sphere_pose(base + 360.0 * (k + 0.25) / n_test, 20.0, radius) for k in range(n_test)]
    return {"train": train, "val": val, "test": test}


def generate_scene(out_dir: str | os.PathLike, size: int = 100, views: int = 25, test_views: int = 8,
                   seed: int = 0, camera_angle_x: float = 0.6911, radius: float = 4.0) -> Path:
    """Render the analytic scene into a Blender-format folder; deterministic for a given seed.

    Writes ``transforms_{train,val,test}.json`` (with extra ``near``, ``far``, ``aabb``)
    and RGBA PNGs ``{split}/r_{k}.png``. Returns the folder.
    """
    if not (8 <= size <= 4096) or views < 1 or test_views < 1:
        raise InvalidInputError("need 8 <= size <= 4096 and at least one train and one test view")
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    objects = _scene_objects(rng)
    focal = 0.5 * size / math.tan(0.5 * camera_angle_x)
    poses = _camera_poses(views, test_views, radius, rng)
    for split in SPLITS:
        frames = []
        (out / split).mkdir(parents=True, exist_ok=True)
        for k, c2w in enumerate(poses[split]):
            rgba = render_analytic(objects, c2w, size, focal)
            with atomic_path(out / split / f"r_{k}.png") as tmp:
                Image.fromarray(rgba, "RGBA").save(tmp, format="PNG")
            frames.append({"file_path": f"./{split}/r_{k}", "transform_matrix": c2w.tolist()})
        write_json(out / f"transforms_{split}.json", {
            "camera_angle_x": camera_angle_x, "near": radius - 2.0, "far": radius + 2.0,
            "aabb": [[-1.25, -1.25, -0.75], [1.25, 1.25, 0.75]], "frames": frames,
            "generator": {"name": "inrkit.nerf.generate_scene", "seed": seed, "size": size}})
    return out


# --------------------------------------------------------------------------- loader
@dataclass
class SceneSplit:
    """Images ``[N, H, W, 3]`` (float32 in [0, 1], composited on white) and poses ``[N, 4, 4]``."""

    images: np.ndarray
    poses: np.ndarray


@dataclass
class Scene:
    """A Blender-format scene: splits plus shared intrinsics and ray bounds."""

    splits: dict[str, SceneSplit]
    height: int
    width: int
    focal: float
    near: float = 2.0
    far: float = 6.0
    aabb: np.ndarray | None = None
    path: str = ""
    extra: dict = field(default_factory=dict)

    def split(self, name: str) -> SceneSplit:
        if name not in self.splits:
            raise InvalidInputError(f"scene has no {name!r} split (has {sorted(self.splits)})")
        return self.splits[name]

    def metadata(self) -> dict:
        """Camera metadata stored with a trained model (enough to render novel views)."""
        poses = np.concatenate([s.poses for s in self.splits.values()])
        return {"kind": "nerf", "height": self.height, "width": self.width, "focal": self.focal,
                "near": self.near, "far": self.far,
                "aabb": None if self.aabb is None else np.asarray(self.aabb).tolist(),
                "radius": float(np.linalg.norm(poses[:, :3, 3], axis=-1).mean()), "white_background": True}


def _read_json(path: Path) -> dict:
    data = read_json_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list) or not data["frames"]:
        raise InvalidFileError(f"{path}: expected an object with a non-empty 'frames' list")
    if len(data["frames"]) > MAX_SCENE_FRAMES:
        raise InvalidFileError(f"{path}: {len(data['frames'])} frames (at most {MAX_SCENE_FRAMES})")
    angle = data.get("camera_angle_x")
    if isinstance(angle, bool) or not isinstance(angle, (int, float)) or not 0 < angle < math.pi:
        raise InvalidFileError(f"{path}: 'camera_angle_x' must be a number in (0, pi)")
    return data


def _frame_path(root: Path, frame: object, jpath: Path) -> Path:
    """The image of a frame: a regular file inside the scene folder (``.png`` added when there is no suffix)."""
    if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
        raise InvalidFileError(f"{jpath}: frame without a 'file_path' string")
    name = frame["file_path"]
    if name and not Path(name).suffix:
        name += ".png"
    return inside_folder(root, name, f"{jpath}: frame")


def _image_size(path: Path, downscale: int) -> tuple[int, int]:
    """``(height, width)`` after downscaling, from the image header only (no decoding)."""
    with open_image(path) as img:
        width, height = img.size
    if width // downscale < 1 or height // downscale < 1:
        raise InvalidFileError(f"{path}: a {width}x{height} image cannot be downscaled by {downscale}")
    return height // downscale, width // downscale


def _read_image(path: Path, downscale: int) -> np.ndarray:
    with open_image(path) as src:
        img = src.convert("RGBA")
        if downscale > 1:
            img = img.resize((img.width // downscale, img.height // downscale), Image.Resampling.BOX)
        rgba = np.asarray(img, dtype=np.float32)
    rgba /= 255.0
    return rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])


def _finite_number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidFileError(f"{what} must be a finite number, got {str(value)[:50]}")
    return float(value)


def _parse_pose(frame: dict, path: Path) -> np.ndarray:
    try:
        pose = np.asarray(frame["transform_matrix"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidFileError(f"{path}: frame without a numeric 4x4 'transform_matrix'") from exc
    if pose.shape != (4, 4) or not np.isfinite(pose).all():
        raise InvalidFileError(f"{path}: 'transform_matrix' must be a finite 4x4 matrix, got shape {pose.shape}")
    return pose


def load_blender(path: str | os.PathLike, downscale: int = 1, splits: tuple[str, ...] = SPLITS,
                 max_views: int | None = None) -> Scene:
    """Load a Blender-format scene folder; images composited on white, optionally downscaled.

    Args:
        path: folder with ``transforms_{split}.json``.
        downscale: integer factor (box filter); the focal length is scaled to match.
        splits: splits to read; a missing ``val`` split is skipped, others are errors.
        max_views: read at most this many frames per split (evenly spaced).
    """
    root = Path(path)
    if not root.is_dir():
        raise InvalidFileError(f"{root}: not a scene folder")
    if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
        raise InvalidInputError(f"downscale must be a positive integer, got {downscale!r}")
    if max_views is not None and (isinstance(max_views, bool) or not isinstance(max_views, int) or max_views < 1):
        raise InvalidInputError(f"max_views must be a positive integer, got {max_views!r}")
    plans: dict[str, tuple[Path, dict, list[Path], list[np.ndarray]]] = {}
    meta: dict | None = None
    shape: tuple[int, int] | None = None
    pixels = file_bytes = 0
    for split in splits:  # first pass: JSON, paths, poses and image headers; nothing decoded yet
        jpath = root / f"transforms_{split}.json"
        if split == "val" and not jpath.exists():
            continue
        data = _read_json(jpath)
        frames = data["frames"]
        if max_views is not None and len(frames) > max_views:
            frames = [frames[i] for i in np.linspace(0, len(frames) - 1, max_views).round().astype(int)]
        paths, poses, seen = [], [], set()
        for frame in frames:
            if not isinstance(frame, dict):
                raise InvalidFileError(f"{jpath}: frame without a 'file_path' string")
            poses.append(_parse_pose(frame, jpath))
            image_path = _frame_path(root, frame, jpath)
            if image_path in seen:
                raise InvalidFileError(f"{jpath}: image {image_path.name} is listed twice")
            seen.add(image_path)
            size = _image_size(image_path, downscale)
            if shape is not None and size != shape:
                raise InvalidFileError(f"{jpath}: images have different sizes ({size[1]}x{size[0]} and "
                                       f"{shape[1]}x{shape[0]} after downscaling)")
            shape = size
            pixels += size[0] * size[1]
            file_bytes += file_size(image_path)
            if pixels > MAX_SCENE_PIXELS or 12 * pixels > decode_budget(file_bytes):
                raise InvalidFileError(f"{root}: the frames hold more pixels than the limits allow "
                                       f"(at most {MAX_SCENE_PIXELS}, and the decode-ratio rule of docs/limits.md)")
            paths.append(image_path)
        plans[split] = (jpath, data, paths, poses)
        meta = meta or data
    if not plans or meta is None or shape is None:
        raise InvalidInputError("no splits requested")
    height, width = shape
    loaded: dict[str, SceneSplit] = {}
    for split, (jpath, _, paths, poses) in plans.items():  # second pass: decode into one array per split
        images = np.empty((len(paths), height, width, 3), dtype=np.float32)
        for i, image_path in enumerate(paths):
            img = _read_image(image_path, downscale)
            if img.shape[:2] != (height, width):
                raise InvalidFileError(f"{image_path}: decoded size differs from its header")
            images[i] = img
        loaded[split] = SceneSplit(images, np.stack(poses).astype(np.float32))
    focal = 0.5 * width / math.tan(0.5 * float(meta["camera_angle_x"]))
    aabb = meta.get("aabb")
    if aabb is not None:
        ok = (isinstance(aabb, list) and len(aabb) == 2
              and all(isinstance(c, list) and len(c) == 3 for c in aabb))
        if ok:
            aabb = np.asarray([[_finite_number(v, f"{root}: 'aabb'") for v in c] for c in aabb], dtype=np.float64)
        if not ok or not (aabb[1] > aabb[0]).all():
            raise InvalidFileError(f"{root}: 'aabb' must be [[xmin, ymin, zmin], [xmax, ymax, zmax]]")
    near = _finite_number(meta.get("near", 2.0), f"{root}: 'near'")
    far = _finite_number(meta.get("far", 6.0), f"{root}: 'far'")
    if not 0 <= near < far:
        raise InvalidFileError(f"{root}: need 0 <= near < far, got {near}, {far}")
    return Scene(loaded, int(height), int(width), focal, near, far, aabb, str(root))
