import math

import numpy as np
import pytest

from data_schemas.geometry import project_points
from pipeline.camera import KITTI_K_1216x352
from pipeline.lidar import (
    HitSurface,
    apply_returns,
    beam_geometry,
    camera_facing_rays,
    detection_probability,
    hit_surface,
    reflectance_proxy,
)
from pipeline.mesh import grid_mesh
from pipeline.pose import kitti_mount
from pipeline.sensors import ReturnModel, load_sensor

from .conftest import small_K

HW = (352, 1216)


def _revolution(sensor):
    """Every (laser, firing) of one revolution, written out here from the model in the
    docstring of pipeline.lidar: azimuth = offset + k * step, emitter o, direction d."""
    lasers, k = np.divmod(np.arange(sensor.beams * sensor.num_azimuths), sensor.num_azimuths)
    el = np.asarray(sensor.elevations_rad)[lasers]
    az = np.asarray(sensor.azimuth_offsets_rad)[lasers] + k * sensor.azimuth_step_rad
    v, h = np.asarray(sensor.vertical_offsets_m)[lasers], np.asarray(sensor.horizontal_offsets_m)[
        lasers]
    d = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], 1)
    o = (v[:, None] * np.stack([-np.sin(el) * np.cos(az), -np.sin(el) * np.sin(az), np.cos(el)], 1)
         + h[:, None] * np.stack([-np.sin(az), np.cos(az), np.zeros_like(az)], 1))
    return lasers, k, o, d


@pytest.mark.parametrize("preset", ["hdl64e", "hdl64e-uniform"])
def test_only_rays_that_can_reach_the_image_are_cast(preset):
    sensor = load_sensor(preset)
    T = kitti_mount()
    rays = camera_facing_rays(sensor, KITTI_K_1216x352, HW, T)
    assert 0 < len(rays) < sensor.beams * sensor.num_azimuths / 3
    assert np.allclose(np.linalg.norm(rays.dirs_cam, axis=1), 1.0)
    # every kept ray lands in the image somewhere within the sensor's range (checked at 400
    # ranges; the LiDAR sits behind the camera, so near parts of low rays cross the image)
    lands_somewhere = np.zeros(len(rays), bool)
    for t in np.geomspace(sensor.min_range_m, sensor.max_range_m, 400):
        *_, inside = project_points(rays.points_cam(np.full(len(rays), t)), KITTI_K_1216x352, HW)
        lands_somewhere |= inside
    assert lands_somewhere.mean() > 0.99
    # every firing of the revolution whose return at 20 m lands between the pixel centres of
    # the image (where the depth-map mesh has triangles) is kept
    lasers, k, o, d = _revolution(sensor)
    pts = (o + 20.0 * d) @ T[:3, :3].T + T[:3, 3]
    u, v = (pts @ KITTI_K_1216x352.T)[:, :2].T / pts[:, 2]
    lands = (pts[:, 2] > 0) & (u >= 0) & (u <= HW[1] - 1) & (v >= 0) & (v <= HW[0] - 1)
    selected = set(zip(rays.ring.tolist(), rays.azimuth_index.tolist(), strict=True))
    assert set(zip(lasers[lands].tolist(), k[lands].tolist(), strict=True)) <= selected


def test_rays_follow_the_laser_table():
    sensor = load_sensor("hdl64e")
    rays = camera_facing_rays(sensor, KITTI_K_1216x352, HW, kitti_mount())
    el = np.arcsin(rays.dirs_lidar[:, 2])
    assert np.allclose(el, np.asarray(sensor.elevations_rad)[rays.ring])
    az = np.arctan2(rays.dirs_lidar[:, 1], rays.dirs_lidar[:, 0])
    expected = (np.asarray(sensor.azimuth_offsets_rad)[rays.ring]
                + rays.azimuth_index * sensor.azimuth_step_rad)
    assert np.allclose(np.angle(np.exp(1j * (az - expected))), 0.0, atol=1e-6)
    assert math.degrees(np.ptp(np.unwrap(az))) == pytest.approx(81, abs=8)  # ~ camera HFOV
    # emitters: perpendicular to their beam, at the table's distance from the sensor origin
    o = rays.origins_lidar
    assert np.allclose(np.einsum("ij,ij->i", o, rays.dirs_lidar), 0.0, atol=1e-12)
    table = np.hypot(sensor.vertical_offsets_m, sensor.horizontal_offsets_m)[rays.ring]
    assert np.allclose(np.linalg.norm(o, axis=1), table)
    T = kitti_mount()
    assert np.allclose(rays.origins_cam, o @ T[:3, :3].T + T[:3, 3])


def test_beam_geometry_puts_returns_where_the_velodyne_model_does():
    """Velodyne's model: z = t sin(el) + v cos(el); horizontal distance t cos(el) - v sin(el)
    along the azimuth, h sideways (apparent azimuth = a + atan(h / that distance))."""
    sensor = load_sensor("hdl64e")
    lasers = np.array([0, 17, 40, 63])
    az = np.array([0.3, -1.2, 2.0, 0.0])
    o, d = beam_geometry(sensor, lasers, az)
    t = np.array([7.0, 15.0, 40.0, 3.0])
    p = o + t[:, None] * d
    el = np.asarray(sensor.elevations_rad)[lasers]
    v = np.asarray(sensor.vertical_offsets_m)[lasers]
    h = np.asarray(sensor.horizontal_offsets_m)[lasers]
    radial = t * np.cos(el) - v * np.sin(el)
    assert np.allclose(p[:, 2], t * np.sin(el) + v * np.cos(el))
    assert np.allclose(np.hypot(p[:, 0], p[:, 1]), np.hypot(radial, h))
    assert np.allclose(np.arctan2(p[:, 1], p[:, 0]), az + np.arctan2(h, radial))


def test_azimuth_phases_differ_between_lasers_but_not_in_the_uniform_preset():
    for preset, distinct in (("hdl64e", True), ("hdl64e-uniform", False)):
        sensor = load_sensor(preset)
        rays = camera_facing_rays(sensor, KITTI_K_1216x352, HW, kitti_mount())
        az = np.arctan2(rays.dirs_lidar[:, 1], rays.dirs_lidar[:, 0])
        phase = np.angle(np.exp(1j * (az - rays.azimuth_index * sensor.azimuth_step_rad)))
        per_ring = {int(r): np.round(phase[rays.ring == r], 9) for r in np.unique(rays.ring)}
        assert all(len(np.unique(p)) == 1 for p in per_ring.values())  # one phase per laser
        phases = {float(p[0]) for p in per_ring.values()}
        if distinct:  # each laser on its own phase: returns do not line up in columns
            assert len(phases) > 40
            step = sensor.azimuth_step_rad
            assert np.ptp(np.mod(np.array(sorted(phases)), step)) > 0.5 * step
        else:  # one shared azimuth grid: the same firing index is the same column everywhere
            assert phases == {0.0}
            common = np.intersect1d(rays.azimuth_index[rays.ring == 20],
                                    rays.azimuth_index[rays.ring == 30])
            assert len(common) > 100


def test_phase_jitter_shifts_each_laser():
    sensor = load_sensor("hdl64e")
    shift = np.linspace(-0.5, 0.5, sensor.beams) * sensor.azimuth_step_rad
    a = camera_facing_rays(sensor, KITTI_K_1216x352, HW, kitti_mount())
    b = camera_facing_rays(sensor, KITTI_K_1216x352, HW, kitti_mount(), phase_shift_rad=shift)
    for ring in (5, 30):
        az_a = np.arctan2(a.dirs_lidar[a.ring == ring, 1], a.dirs_lidar[a.ring == ring, 0])
        az_b = np.arctan2(b.dirs_lidar[b.ring == ring, 1], b.dirs_lidar[b.ring == ring, 0])
        k_a, k_b = a.azimuth_index[a.ring == ring], b.azimuth_index[b.ring == ring]
        common, ia, ib = np.intersect1d(k_a, k_b, return_indices=True)
        assert len(common) > 100
        assert np.allclose(az_b[ib] - az_a[ia], shift[ring], atol=1e-9)


# -- return model ------------------------------------------------------------------------------
MODEL = ReturnModel()


def test_detection_is_monotone_in_range_incidence_and_reflectance():
    r = np.linspace(1.0, 150.0, 300)
    p_range = detection_probability(MODEL, r, np.full_like(r, 0.5), np.full_like(r, 0.1))
    assert np.all(np.diff(p_range) <= 0) and p_range[0] > 0.99 and p_range[-1] < 0.5
    mid = (p_range > 1e-6) & (p_range < 1 - 1e-6)
    assert np.all(np.diff(p_range[mid]) < 0) and mid.sum() > 50
    cos = np.linspace(1.0, 0.0, 300)  # from normal to grazing incidence
    p_inc = detection_probability(MODEL, np.full_like(cos, 60.0), cos, np.full_like(cos, 0.1))
    assert np.all(np.diff(p_inc) <= 0) and p_inc[0] > p_inc[-2] and p_inc[-1] == 0.0
    rho = np.linspace(0.01, 0.8, 100)
    p_rho = detection_probability(MODEL, np.full_like(rho, 60.0), np.ones_like(rho), rho)
    assert np.all(np.diff(p_rho) >= 0) and p_rho[0] < 0.01 and p_rho[-1] > 0.99
    # the link budget: the datasheet's reference target at its range, normal incidence
    reference = detection_probability(MODEL, np.array([MODEL.reference_range_m]), np.ones(1),
                                      np.array([MODEL.reference_reflectance]))
    assert reference[0] == pytest.approx(MODEL.reference_detection)


def test_reflectance_proxy_darker_pixels_reflect_less_but_shadows_do_not():
    rgb = np.full((96, 256, 3), 128, np.uint8)
    rgb[40:56, 60:76] = 0  # black paint
    rgb[40:56, 180:196] = 255  # white paint
    rows, cols = np.array([48, 48, 48, 10, 48]), np.array([68, 120, 188, 120, 120])
    surface = HitSurface(np.ones(5), rows, cols, np.array([False] * 4 + [True]))
    rho = reflectance_proxy(MODEL, surface, rgb)
    assert rho[0] == pytest.approx(MODEL.reflectance_dark)
    assert rho[1] == pytest.approx(MODEL.reflectance_typical, rel=0.05)
    assert rho[0] < rho[1] < rho[2]
    assert rho[4] == MODEL.default_reflectance  # unseen by the camera
    # the same scene in shadow (a quarter of the light): the same reflectance where it is even
    shadow = reflectance_proxy(MODEL, surface, (rgb.astype(float) * 0.5).astype(np.uint8))
    assert shadow[1] == pytest.approx(rho[1], rel=0.05) and shadow[3] == pytest.approx(rho[3],
                                                                                         rel=0.05)
    assert np.all(reflectance_proxy(MODEL, surface, None) == MODEL.default_reflectance)


def test_hit_surface_gives_the_analytic_incidence_on_a_ground_plane():
    hw, K, height = (120, 360), small_K((120, 360)), 1.65
    v = np.arange(hw[0])[:, None] - K[1, 2]
    depth = np.where(v > 0, height * K[1, 1] / np.maximum(v, 1e-9), 0.0) * np.ones((1, hw[1]))
    mesh = grid_mesh(depth.astype(np.float32), K, max_rel_jump=1.0)
    rng = np.random.default_rng(0)
    pix = np.stack([rng.uniform(0, hw[1] - 1, 500), rng.uniform(70, hw[0] - 1, 500)], 1)
    rays = np.concatenate([pix, np.ones((500, 1))], 1) @ np.linalg.inv(K).T
    points = rays * (height / rays[:, 1])[:, None]  # on the plane y = height
    origin = np.array([0.1, -0.3, -0.5])
    dirs = points - origin
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    surface = hit_surface(mesh, points, dirs)
    assert np.allclose(surface.cos_incidence, np.abs(dirs[:, 1]), atol=1e-4)
    assert not surface.unseen.any()
    assert np.array_equal(surface.row, np.rint(pix[:, 1]).astype(int))


def test_returns_drop_noise_and_range_limits():
    spec = load_sensor("hdl64e", drop_prob=0.1, drop_prob_per_100m=0.2, range_noise_std_m=0.05)
    t = np.full(200_000, 50.0)
    t[:10] = np.inf
    t[10:20] = 0.5  # closer than min range
    t[20:30] = 130.0  # beyond max range
    r = apply_returns(t, spec, np.random.default_rng(0))
    assert np.all(np.isinf(r[:30]))
    kept = np.isfinite(r)
    assert kept[30:].mean() == pytest.approx(1 - (0.1 + 0.2 * 0.5), abs=0.005)
    assert np.std(r[kept] - 50.0) == pytest.approx(0.05, rel=0.02)
    assert np.array_equal(r, apply_returns(t, spec, np.random.default_rng(0)))
    assert not np.array_equal(
        np.isfinite(r), np.isfinite(apply_returns(t, spec, np.random.default_rng(1)))
    )


def test_detection_probability_sets_the_kept_share_and_is_seeded():
    spec = load_sensor("hdl64e")
    t = np.full(100_000, 20.0)
    detection = np.where(np.arange(len(t)) % 2 == 0, 0.9, 0.3)
    r = apply_returns(t, spec, np.random.default_rng(4), detection)
    kept = np.isfinite(r)
    assert kept[::2].mean() == pytest.approx(0.9, abs=0.01)
    assert kept[1::2].mean() == pytest.approx(0.3, abs=0.01)
    assert np.array_equal(r, apply_returns(t, spec, np.random.default_rng(4), detection))
    assert not np.isfinite(apply_returns(t, spec, np.random.default_rng(4), 0 * detection)).any()
