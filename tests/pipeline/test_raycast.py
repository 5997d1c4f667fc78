"""One contract suite run against every ray-cast backend, plus agreement with Embree."""

import numpy as np
import pytest

from data_schemas.geometry import project_points
from pipeline.lidar import camera_facing_rays
from pipeline.mesh import grid_mesh
from pipeline.pose import make_transform
from pipeline.raycast import BACKENDS, make_caster, parse_backend
from pipeline.sensors import load_sensor
from pipeline.synthetic import Box, box_mesh, kitti_like_scene, render_boxes

from .conftest import small_K

HW = (120, 360)
LEVEL_R = np.array(
    [[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]]
)  # LiDAR x->cam z, z->cam -y
OFFSET_MOUNT = make_transform(LEVEL_R, np.array([0.05, -0.08, -0.27]))


def _rays(hw, K, T, step_deg=0.35, preset="hdl64e"):
    """Rays of a preset (the calibrated hdl64e by default: per-laser phases, emitter offsets)."""
    return camera_facing_rays(load_sensor(preset, azimuth_step_deg=step_deg), K, hw, T)


def _inside(points_cam, K, hw, margin):
    """Points whose projection lies at least ``margin`` px inside the pixel-centre box."""
    z = points_cam[:, 2]
    u = K[0, 0] * points_cam[:, 0] / z + K[0, 2]
    v = K[1, 1] * points_cam[:, 1] / z + K[1, 2]
    h, w = hw
    return (z > 0) & (u >= margin) & (u <= w - 1 - margin) & (v >= margin) & (v <= h - 1 - margin)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fronto_parallel_plane_gives_analytic_ranges(backend):
    K, D = small_K(HW), 12.0
    rays = _rays(HW, K, OFFSET_MOUNT)
    t = make_caster(backend, grid_mesh(np.full(HW, D, np.float32), K)).cast(
        rays.origins_cam, rays.dirs_cam, 120.0
    )
    t_true = (D - rays.origins_cam[:, 2]) / rays.dirs_cam[:, 2]
    p_true = rays.points_cam(t_true)
    inner, outer = _inside(p_true, K, HW, 1e-3), _inside(p_true, K, HW, -1e-3)
    assert inner.sum() > 1000
    assert np.allclose(t[inner], t_true[inner], rtol=1e-5)
    assert np.all(np.isinf(t[~outer]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_ground_plane_hits_follow_beam_elevations(backend):
    K, cam_height, max_depth = small_K(HW), 1.65, 60.0
    rays_pix = np.stack(np.meshgrid(np.arange(HW[1]), np.arange(HW[0])), -1)
    v = rays_pix[..., 1] - K[1, 2]
    depth = np.where(v > 0, cam_height * K[1, 1] / np.maximum(v, 1e-9), 0.0)
    depth = np.where(depth <= max_depth, depth, 0.0).astype(np.float32)
    rays = _rays(HW, K, OFFSET_MOUNT)
    mesh = grid_mesh(depth, K, max_rel_jump=1.0)  # keep the grazing rows near the horizon
    t = make_caster(backend, mesh).cast(rays.origins_cam, rays.dirs_cam, 120.0)
    elevation = np.arcsin(rays.dirs_lidar[:, 2])
    emitter_height = cam_height - OFFSET_MOUNT[1, 3] + rays.origins_lidar[:, 2]
    with np.errstate(divide="ignore"):
        t_true = np.where(elevation < 0, emitter_height / np.sin(-elevation), np.inf)
    p_true = rays.points_cam(np.where(np.isfinite(t_true), t_true, 0))
    can_hit = np.isfinite(t_true) & _inside(p_true, K, HW, 1.0) & (p_true[:, 2] < max_depth * 0.8)
    assert np.all(np.isinf(t[elevation >= 0]))  # beams at or above the horizon never hit the ground
    assert can_hit.sum() > 500
    assert np.allclose(t[can_hit], t_true[can_hit], rtol=1e-4)
    for ring in np.unique(rays.ring[can_hit]):  # every ring hits at its own analytic range
        sel = can_hit & (rays.ring == ring)
        assert np.ptp(t[sel]) < 1e-3 * t_true[sel][0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_t_max_and_empty_inputs(backend):
    K = small_K(HW)
    rays = _rays(HW, K, OFFSET_MOUNT)
    caster = make_caster(backend, grid_mesh(np.full(HW, 50.0, np.float32), K))
    assert np.all(np.isinf(caster.cast(rays.origins_cam, rays.dirs_cam, 30.0)))
    assert caster.cast(np.zeros(3), np.zeros((0, 3)), 30.0).shape == (0,)
    sky = make_caster(backend, grid_mesh(np.zeros(HW, np.float32), K))
    assert np.all(np.isinf(sky.cast(rays.origins_cam, rays.dirs_cam, 120.0)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_rays_raise(backend):
    caster = make_caster(backend, grid_mesh(np.full(HW, 5.0, np.float32), small_K(HW)))
    with pytest.raises(ValueError, match="direction"):
        caster.cast(np.zeros(3), np.array([[0.0, 0.0, 0.0]]), 10.0)
    with pytest.raises(ValueError, match="origin"):
        caster.cast(np.full(3, np.nan), np.array([[0.0, 0.0, 1.0]]), 10.0)
    with pytest.raises(ValueError, match="origin"):
        caster.cast(np.zeros((2, 3)), np.array([[0.0, 0.0, 1.0]] * 3), 10.0)
    with pytest.raises(ValueError, match="t_max"):
        caster.cast(np.zeros(3), np.array([[0.0, 0.0, 1.0]]), 0.0)


def test_unknown_backend_and_fast_needs_grid_mesh():
    with pytest.raises(ValueError, match="allowed: fast, embree, open3d"):
        parse_backend("optix")
    with pytest.raises(ValueError, match="GridMesh"):
        make_caster("fast", box_mesh((Box((0, 0, 5), (1, 1, 6)),)))


def _random_box_scene(seed, hw, K):
    rng = np.random.default_rng(seed)
    boxes = [
        Box((-30.0, 1.6, 1.0), (30.0, 2.6, 70.0)),
        Box((-30.0, -20.0, 40.0), (30.0, 1.6, 41.0)),
    ]
    for _ in range(12):
        c = rng.uniform([-8, -2, 4], [8, 1.6, 35])
        s = rng.uniform([0.3, 0.3, 0.3], [3.0, 3.0, 3.0])
        boxes.append(Box(tuple(c - s / 2), tuple(np.minimum(c + s / 2, [99, 1.6, 99]))))
    return render_boxes(hw, K, tuple(boxes))[0]


def _scenes():
    """(name, depth, K, mount): full-resolution KITTI-like streets and random box clutter."""
    from pipeline.pose import kitti_mount

    T_k = kitti_mount()
    for seed in (1, 2):
        sc = kitti_like_scene(seed)
        yield f"kitti{seed}", sc.depth, sc.K, T_k
    K = small_K((176, 608), 75.0)
    for seed in (3, 4):
        rng = np.random.default_rng(seed)
        T = T_k.copy()
        T[:3, 3] += rng.uniform(-0.3, 0.3, 3)
        yield f"boxes{seed}", _random_box_scene(seed, (176, 608), K), K, T


SCENES = list(_scenes())


# every scene for the fast path; open3d (slow BVH build) on one scene of each kind
PAIRS = [("fast", s) for s in SCENES] + [
    ("open3d", s) for s in SCENES if s[0] in ("kitti1", "boxes3")
]


@pytest.mark.parametrize("backend, scene", PAIRS, ids=[f"{b}-{s[0]}" for b, s in PAIRS])
def test_backends_agree_with_embree(backend, scene):
    _, depth, K, T = scene
    rays = camera_facing_rays(load_sensor("hdl64e"), K, depth.shape, T)
    mesh = grid_mesh(depth, K)
    ref = make_caster("embree", mesh).cast(rays.origins_cam, rays.dirs_cam, 120.0)
    out = make_caster(backend, mesh).cast(rays.origins_cam, rays.dirs_cam, 120.0)
    same = np.isfinite(ref) == np.isfinite(out)
    both = np.isfinite(ref) & np.isfinite(out)
    close = np.abs(out[both] - ref[both]) <= np.maximum(0.05, 0.01 * ref[both])
    assert np.isfinite(ref).sum() > 1000
    assert same.mean() >= 0.99
    assert close.mean() >= 0.99


@pytest.mark.parametrize("backend", ["embree", "open3d"])
def test_offset_lidar_sees_points_hidden_from_camera(backend):
    """Box before a wall (explicit 3-D mesh): only an offset LiDAR sees wall behind the box."""
    hw, K = (120, 360), small_K((120, 360), 60.0)
    boxes = (Box((-30.0, -10.0, 20.0), (30.0, 10.0, 21.0)), Box((-1.0, -1.0, 8.0), (1.0, 1.6, 9.0)))
    cam_depth, _ = render_boxes(hw, K, boxes)
    caster = make_caster(backend, box_mesh(boxes))
    hidden = {}
    for name, t in (("offset", np.array([0.6, -0.4, -0.27])), ("zero", np.zeros(3))):
        rays = _rays(hw, K, make_transform(LEVEL_R, t), step_deg=0.17, preset="hdl64e-uniform")
        r = caster.cast(rays.origins_cam, rays.dirs_cam, 120.0)
        hit = np.isfinite(r)
        pts = rays.points_cam(np.where(hit, r, 0.0))[hit]
        rows, cols, z, inside = project_points(pts, K, hw)
        hidden[name] = int(np.sum(z[inside] > cam_depth[rows[inside], cols[inside]] + 0.5))
    assert hidden["offset"] >= 20
    assert hidden["zero"] == 0


def test_fast_matches_embree_on_random_noisy_depth():
    """Noisy depth (many culled triangles), odd sizes, off-centre K, jittered mounts."""
    from pipeline.pose import MountJitter, jitter_mount, kitti_mount

    rng = np.random.default_rng(0)
    sensor = load_sensor("hdl64e", azimuth_step_deg=0.3)
    for _ in range(12):
        h, w = int(rng.integers(2, 60)), int(rng.integers(2, 90))
        depth = rng.uniform(1, 30, (h, w)).astype(np.float32)
        depth[rng.random((h, w)) < 0.2] = 0
        f = rng.uniform(0.3, 2.0) * w
        K = np.array([[f, 0, rng.uniform(0, w)], [0, f, rng.uniform(0, h)], [0, 0, 1]])
        T = jitter_mount(kitti_mount(), MountJitter(0.3, 5.0), rng)
        mesh = grid_mesh(depth, K, max_rel_jump=float(rng.uniform(0.05, 2.0)))
        rays = camera_facing_rays(sensor, K, (h, w), T)
        ref = make_caster("embree", mesh).cast(rays.origins_cam, rays.dirs_cam, 120.0)
        out = make_caster("fast", mesh).cast(rays.origins_cam, rays.dirs_cam, 120.0)
        mismatched = np.count_nonzero(np.isfinite(ref) != np.isfinite(out))
        assert mismatched <= max(2, 0.01 * len(ref))  # rays grazing a triangle edge may differ
        both = np.isfinite(ref) & np.isfinite(out)
        close = np.abs(out[both] - ref[both]) <= np.maximum(0.05, 0.01 * ref[both])
        assert close.sum() >= 0.99 * both.sum()


def _hidden_returns(t, rays, cam_depth, K, hw):
    """Returns the camera cannot see: > 0.5 m behind everything it sees within +-1 pixel of
    where they project (a return through the one-pixel gap at a depth edge may round to the
    foreground's pixel)."""
    hit = np.isfinite(t)
    pts = rays.points_cam(np.where(hit, t, 0.0))[hit]
    rows, cols, z, inside = project_points(pts, K, hw)
    padded = np.pad(cam_depth, 1, mode="edge")
    farthest = np.max([padded[1 + dr : 1 + dr + hw[0], 1 + dc : 1 + dc + hw[1]]
                       for dr in (-1, 0, 1) for dc in (-1, 0, 1)], axis=0)
    return int(np.sum(z[inside] > farthest[rows[inside], cols[inside]] + 0.5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_see_through_appears_through_the_background_layer(backend):
    """Box before a wall, camera depth map only: the offset LiDAR sees wall behind the box's
    edges through the background layer, not through the plain grid mesh; a LiDAR without
    offsets (centred, no emitter offsets) never does."""
    from pipeline.mesh import Parallax, layered_mesh

    hw, K = (120, 360), small_K((120, 360), 60.0)
    boxes = (Box((-30.0, -10.0, 20.0), (30.0, 10.0, 21.0)), Box((-1.0, -1.0, 8.0), (1.0, 1.6, 9.0)))
    cam_depth, _ = render_boxes(hw, K, boxes)
    plain = grid_mesh(cam_depth, K)
    layered = layered_mesh(plain, Parallax.unlimited(40))
    hidden = {}
    for name, t, preset in (("offset", np.array([0.6, -0.4, -0.27]), "hdl64e"),
                            ("zero", np.zeros(3), "hdl64e-uniform")):
        rays = _rays(hw, K, make_transform(LEVEL_R, t), step_deg=0.17, preset=preset)
        for mesh_name, mesh in (("plain", plain), ("layered", layered)):
            r = make_caster(backend, mesh).cast(rays.origins_cam, rays.dirs_cam, 120.0)
            hidden[name, mesh_name] = _hidden_returns(r, rays, cam_depth, K, hw)
    assert hidden["offset", "layered"] >= 20
    assert hidden["offset", "plain"] == 0
    assert hidden["zero", "layered"] == 0


LAYERED = [s for s in SCENES if s[0] in ("kitti1", "boxes3", "boxes4")]


@pytest.mark.parametrize("scene", LAYERED, ids=[s[0] for s in LAYERED])
def test_fast_agrees_with_embree_on_the_layered_mesh(scene):
    from pipeline.mesh import Parallax, layered_mesh

    _, depth, K, T = scene
    mesh = layered_mesh(grid_mesh(depth, K), Parallax.unlimited(48))
    assert np.count_nonzero(mesh.back.inv_depth) > 1000
    rays = camera_facing_rays(load_sensor("hdl64e"), K, depth.shape, T)
    ref = make_caster("embree", mesh).cast(rays.origins_cam, rays.dirs_cam, 120.0)
    out = make_caster("fast", mesh).cast(rays.origins_cam, rays.dirs_cam, 120.0)
    front = make_caster("embree", mesh.front).cast(rays.origins_cam, rays.dirs_cam, 120.0)
    assert np.sum(ref < front - 0.5) > 20  # the layer changes what the LiDAR hits
    same = np.isfinite(ref) == np.isfinite(out)
    both = np.isfinite(ref) & np.isfinite(out)
    assert same.mean() >= 0.99
    assert np.mean(np.abs(out[both] - ref[both]) <= np.maximum(0.05, 0.01 * ref[both])) >= 0.99
