"""Every supported depth-model family as a teacher: registry, loading, generate and teach.

Tiny random models of each family are saved with ``save_pretrained`` and loaded back through
the local-folder path (and, for the registry names, through a Hugging Face cache holding them
under the registry's hub id, offline).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import zarr

from data_schemas import SampleStore, StoreLayout
from data_schemas.errors import ConfigError
from pipeline.corpus import CanvasConfig, CorpusConfig, CorpusItem, list_corpus, plan_shards
from pipeline.generate import (
    GenerateConfig,
    ShardContext,
    TeacherFeed,
    canvas_lidar,
    decode_shard,
    finish_shard,
    open_or_create,
    store_info,
)
from pipeline.job import run_generate
from pipeline.teach import TeachConfig, run_teach
from pipeline.teacher import (
    TEACHERS,
    Teacher,
    TeacherConfig,
    check_teacher_inputs,
    resolve_teacher,
)
from pipeline.teachers import tiny
from pipeline.teachers.families import zoedepth_pixels
from pipeline.teachers.prompt import lidar_prompt, sparse_to_canvas
from tests.pipeline.generate_fixtures import make_corpus, scene_image, tiny_config

VARIANTS = {
    "relative": tiny.depth_anything_config,
    "metric": lambda: tiny.depth_anything_config(metric=True, max_depth=80),
    "prompt": tiny.prompt_depth_anything_config,
    "zoedepth": tiny.zoedepth_config,
    "depth_pro": tiny.depth_pro_config,
}
FAMILY = {"relative": "depth_anything", "metric": "depth_anything",
          "prompt": "prompt_depth_anything", "zoedepth": "zoedepth", "depth_pro": "depth_pro"}
RUN = TeacherConfig(input_size=42, batch_size=4)
RAW_0005 = "raw/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000005.png"
SELVAL = "val_selection_cropped/image/2011_09_26_drive_0001_sync_image_0000000005_image_02.png"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One ``save_pretrained`` folder per variant."""
    root = tmp_path_factory.mktemp("teachers")
    out = {}
    for name, make in VARIANTS.items():
        tiny.tiny_model(make(), seed=3).save_pretrained(root / name)
        out[name] = root / name
    return out


def variant_of(name: str) -> str:
    spec = TEACHERS[name]
    if spec.family == "depth_anything":
        return "metric" if spec.output_kind == "depth" else "relative"
    return {"prompt_depth_anything": "prompt"}.get(spec.family, spec.family)


def run_for(variant: str) -> TeacherConfig:
    return TeacherConfig(input_size=42, batch_size=4,
                         prompt="lidar" if variant == "prompt" else "none")


# -- registry ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in TEACHERS if not TEACHERS[n].test_teacher])
def test_registry_entries_load_offline_from_the_hf_cache(name, folders, monkeypatch,
                                                         tmp_path) -> None:
    """A registry name whose weights sit in the HF cache resolves offline to what it declares."""
    import huggingface_hub.constants

    spec = TEACHERS[name]
    repo = tmp_path / f"models--{spec.source.replace('/', '--')}"
    shutil.copytree(folders[variant_of(name)], repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    resolved = resolve_teacher(name)
    assert (resolved.family, resolved.output_kind) == (spec.family, spec.output_kind)
    assert spec.units == ("m" if spec.output_kind == "depth" else
                          "relative disparity (affine-invariant)")
    assert spec.license != "unknown" and "rgb" in spec.needs
    if name in ("depth-pro", "zoedepth-nyu-kitti", "prompt-depth-anything-vits"):
        rgb = scene_image(0, (40, 60))[None]
        sparse = np.zeros((1, 40, 60), np.float32)
        sparse[0, ::4, ::5] = 10.0
        out = Teacher(resolved, run_for(variant_of(name))).predict(rgb, np.array([50.0]),
                                                                   sparse)
        assert out.shape == (1, 40, 60) and np.isfinite(out).all()


def test_needs_and_kinds_declared() -> None:
    assert TEACHERS["depth-pro"].needs == ("rgb", "focal_px")
    assert TEACHERS["prompt-depth-anything-vitl"].needs == ("rgb", "depth_prompt")
    assert TEACHERS["zoedepth-kitti"].output_kind == "depth"
    assert TEACHERS["depth-anything-v2-metric-outdoor-large"].attrs()["units"] == "m"


# -- each family's processing ------------------------------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_family_loads_from_its_folder_with_its_kind(variant, folders) -> None:
    spec = resolve_teacher(str(folders[variant]))
    assert spec.name == "local" and spec.family == FAMILY[variant]
    assert spec.output_kind == ("disparity" if variant == "relative" else "depth")
    rgb = np.stack([scene_image(i, (48, 96)) for i in range(2)])
    prompt = np.zeros((2, 48, 96), np.float32)
    prompt[:, 20::6, ::4] = np.linspace(4, 40, 24)[None, :]
    out = Teacher(spec, run_for(variant)).predict(rgb, np.array([60.0, 70.0]), prompt)
    assert out.shape == (2, 48, 96) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0
    if variant == "metric":
        assert out.max() <= 80.0  # sigmoid x max_depth


def test_depth_pro_depth_is_proportional_to_the_focal_length(folders) -> None:
    teacher = Teacher(resolve_teacher(str(folders["depth_pro"])), RUN)
    rgb = np.stack([scene_image(i, (40, 72)) for i in range(2)])
    near = teacher.predict(rgb, np.array([50.0, 50.0]))
    far = teacher.predict(rgb, np.array([100.0, 150.0]))
    own = teacher.predict(rgb)  # no focal length: the model's field of view
    unclamped = (near > 1e-3) & (far < 1e4) & (near < 1e4 / 3)
    np.testing.assert_allclose(far[0][unclamped[0]], 2 * near[0][unclamped[0]], rtol=1e-5)
    np.testing.assert_allclose(far[1][unclamped[1]], 3 * near[1][unclamped[1]], rtol=1e-5)
    assert np.isfinite(own).all() and not np.allclose(own, near)
    mixed = teacher.predict(rgb, np.array([50.0, np.nan]))  # NaN: that image's own FoV
    np.testing.assert_allclose(mixed[0], near[0], rtol=1e-5)
    np.testing.assert_allclose(mixed[1], own[1], rtol=1e-5)


def test_prompt_depth_anything_output_scales_with_its_prompt(folders) -> None:
    """The model normalises the prompt by its min/max and maps its output back: metric."""
    teacher = Teacher(resolve_teacher(str(folders["prompt"])), run_for("prompt"))
    rgb = scene_image(1, (48, 96))[None]
    sparse = np.zeros((1, 48, 96), np.float32)
    sparse[0, 24::5, ::3] = np.random.default_rng(0).uniform(3, 30, (5, 32))
    base = teacher.predict(rgb, prompt=sparse)
    np.testing.assert_allclose(teacher.predict(rgb, prompt=2 * sparse), 2 * base, rtol=1e-4)
    assert base.min() >= sparse[sparse > 0].min() - 1e-4  # sigmoid in [0, 1] -> [min, max]


def test_prompt_depth_anything_without_a_prompt_says_what_to_pass(folders, tmp_path,
                                                                  kitti_sample) -> None:
    cfg = TeachConfig(str(kitti_sample), str(tmp_path / "m.zarr"), str(folders["prompt"]),
                      RUN, include=(RAW_0005,), progress=False)
    with pytest.raises(ConfigError, match="needs a depth prompt: pass --teacher-prompt lidar"):
        run_teach(cfg)
    with pytest.raises(ConfigError, match="takes no prompt"):
        run_teach(TeachConfig(str(kitti_sample), str(tmp_path / "n.zarr"), "tiny-random",
                              run_for("prompt"), include=(RAW_0005,), progress=False))


def test_zoedepth_input_equals_the_transformers_processor() -> None:
    from transformers.models.zoedepth.image_processing_pil_zoedepth import (
        ZoeDepthImageProcessorPil,
    )

    processor = ZoeDepthImageProcessorPil(ensure_multiple_of=32, keep_aspect_ratio=True)
    for hw in ((48, 96), (375, 1242), (500, 333)):
        rgb = np.random.default_rng(hw[0]).integers(0, 256, (1, *hw, 3)).astype(np.uint8)
        expected = processor(images=[rgb[0]], return_tensors="np")["pixel_values"]
        ours, _ = zoedepth_pixels(rgb, "cpu")
        np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-5)


def test_lidar_prompt_pools_the_nearest_return_and_fills_gaps() -> None:
    sparse = np.zeros((16, 24), np.float32)
    sparse[1, 1], sparse[2, 3] = 10.0, 7.0      # cell (0, 0): the nearer return wins
    sparse[12, 20] = 30.0                      # cell (1, 2)
    prompt = lidar_prompt(sparse, cell=8)
    assert prompt.shape == (2, 3)
    np.testing.assert_array_equal(prompt, [[7.0, 7.0, 30.0], [7.0, 30.0, 30.0]])


def test_sparse_maps_move_onto_the_canvas_like_the_image() -> None:
    sparse = np.zeros((10, 20), np.float32)
    sparse[3, 4], sparse[7, 15], sparse[0, 0] = 5.0, 9.0, 2.0
    same = sparse_to_canvas(sparse, (10, 20, 2, 5), 6, 12)    # pure crop
    np.testing.assert_array_equal(same, sparse[2:8, 5:17])
    double = sparse_to_canvas(sparse, (20, 40, 0, 0), 20, 40)  # 2x: centres at 2r + 0.5
    assert {(int(r), int(c)) for r, c in zip(*np.nonzero(double), strict=True)} == {
        (6, 8), (14, 30), (0, 0)}


# -- generate ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    yield
    if started:
        ray.shutdown()


def generate_in_process(cfg: GenerateConfig) -> SampleStore:
    """``run_generate``'s three per-shard steps (decode, teacher, finish) without Ray."""
    spec = resolve_teacher(cfg.teacher)
    check_teacher_inputs(spec, cfg.teacher_run)
    items = list_corpus(cfg.corpus)
    plans = plan_shards(items, cfg.shard_size)
    layout = StoreLayout(cfg.canvas.height, cfg.canvas.width, len(plans), cfg.shard_size)
    teacher, sensor = Teacher(spec, cfg.teacher_run), cfg.sensor.load()
    open_or_create(cfg, layout, store_info(cfg, items, spec, teacher.precision, sensor))
    ctx = ShardContext(cfg.store, spec.output_kind, sensor, cfg.sim, cfg.intrinsics, cfg.metric,
                       cfg.seed, cfg.run.fault, TeacherFeed.for_job(cfg, spec))
    for plan in plans:
        decoded = decode_shard(plan, cfg.canvas, ctx.feed)
        finish_shard(decoded, teacher.predict(decoded.rgb, decoded.focal_px, decoded.prompt),
                     0.0, ctx)
    return SampleStore.open(cfg.store)


FLOAT16_RTOL = 2.0**-11 + 3e-4
"""Stored ``teacher_output`` (float16, round to nearest: 2^-11 relative) against a fresh
float32 prediction of another batch (up to ~2e-4 apart in float32, measured)."""


def check_metric_store(store: SampleStore, variant: str, cfg: GenerateConfig) -> dict:
    teacher_attrs = store.attrs["teacher"]
    assert teacher_attrs["output_kind"] == "depth" and teacher_attrs["units"] == "m"
    assert teacher_attrs["family"] == FAMILY[variant] and teacher_attrs["precision"] == "fp32"
    rows = store.read_shard(0)
    raw, depth = rows["teacher_output"], rows["teacher_depth"]
    assert_stored_depth(depth, raw, cfg.metric.max_depth_m)  # no near/far sampling
    return rows


def assert_stored_depth(depth: np.ndarray, raw: np.ndarray, max_depth_m: float) -> None:
    """``depth`` is the metric teacher's own output (stored as float16: ``raw``) with sky
    (<= 0 or beyond ``max_depth_m``) as 0, stored at 1/256 m: within half a step plus the
    float16 rounding of ``raw``, nonzero depths below one step raised to one step. Depths
    below float16's smallest step are 0 in ``raw`` and one step (or 0) in ``depth``."""
    raw = raw.astype(np.float64)
    clean = np.where((raw <= 0) | (raw > max_depth_m), 0.0, raw)
    underflow = (raw == 0) & (depth <= 1 / 256)
    np.testing.assert_array_equal((depth > 0) | underflow, (clean > 0) | underflow)
    step = 1 / 256
    expected = np.where(clean > 0, np.maximum(clean, step), 0.0)
    bound = step / 2 + clean * 2.0**-11 + 1e-9
    assert (underflow | (np.abs(depth - expected) <= bound)).all()


@pytest.mark.parametrize("variant", ["relative", "metric", "zoedepth"])
def test_generate_steps_with_each_teacher(variant, folders, tmp_path) -> None:
    make_corpus(tmp_path / "corpus", 3)
    cfg = tiny_config(tmp_path / "s.zarr", tmp_path / "corpus", teacher=str(folders[variant]),
                      teacher_run=run_for(variant))
    store = generate_in_process(cfg)
    assert len(store.keys()) == 3
    if variant == "relative":  # mapped to a sampled metric range in disparity space
        rows = store.read_shard(0)
        assert store.attrs["teacher"]["output_kind"] == "disparity"
        assert not np.allclose(rows["teacher_depth"], rows["teacher_output"])
    else:
        check_metric_store(store, variant, cfg)


def test_generate_with_depth_pro_passes_the_sampled_focal_length(folders, ray_local,
                                                                 tmp_path) -> None:
    make_corpus(tmp_path / "corpus", 3)
    cfg = tiny_config(tmp_path / "s.zarr", tmp_path / "corpus",
                      teacher=str(folders["depth_pro"]), teacher_run=run_for("depth_pro"))
    assert run_generate(cfg).samples_written == 3
    rows = check_metric_store(SampleStore.open(cfg.store), "depth_pro", cfg)
    teacher = Teacher(resolve_teacher(cfg.teacher), cfg.teacher_run)
    fx = rows["intrinsics"][:, 0, 0].astype(np.float64)
    again = teacher.predict(rows["rgb"], fx)  # depth is proportional to the fx it was given
    np.testing.assert_allclose(1 / rows["teacher_output"], 1 / again, rtol=FLOAT16_RTOL, atol=1e-4)
    assert np.abs(1 / teacher.predict(rows["rgb"], 2 * fx) - 1 / again).max() > 1e-2


def test_generate_prompt_depth_anything_on_kitti_lidar(folders, ray_local, kitti_sample,
                                                       tmp_path) -> None:
    drive = kitti_sample / "raw" / "2011_09_26" / "2011_09_26_drive_0001_sync"
    cfg = replace(tiny_config(tmp_path / "s.zarr", drive, teacher=str(folders["prompt"]),
                              teacher_run=run_for("prompt"), canvas=CanvasConfig(64, 208)),
                  corpus=CorpusConfig((str(drive),), ("image_02/data/*.png",)))
    summary = run_generate(cfg)
    assert summary.samples_written == 1  # frames 50 and 100 have no velodyne_raw
    assert {s.key for s in summary.skipped} == {"image_02/data/0000000050.png",
                                                "image_02/data/0000000100.png"}
    assert all("no KITTI LiDAR map" in s.reason for s in summary.skipped)
    store = SampleStore.open(cfg.store)
    assert store.attrs["teacher"]["needs"] == ["rgb", "depth_prompt"]
    assert store.attrs["generator"]["teacher_run"]["prompt"] == "lidar"
    shard = next(s for s in store.committed_shards if store.records[s].keys)
    rows = store.read_shard(shard)
    raw = rows["teacher_output"][0]
    assert_stored_depth(rows["teacher_depth"][0], raw, 120)
    image = drive / "image_02" / "data" / "0000000005.png"
    prompt = canvas_lidar(CorpusItem("x", str(image)), cfg.canvas)
    assert np.count_nonzero(prompt) > 300  # ~4 % of the 64 x 208 canvas
    again = Teacher(resolve_teacher(cfg.teacher), cfg.teacher_run).predict(
        rows["rgb"][:1], prompt=prompt[None])
    np.testing.assert_allclose(raw, again[0], rtol=FLOAT16_RTOL)


def test_generate_refuses_a_prompt_teacher_without_a_prompt(folders, tmp_path) -> None:
    cfg = tiny_config(tmp_path / "s.zarr", tmp_path, teacher=str(folders["prompt"]))
    with pytest.raises(ConfigError, match="--teacher-prompt lidar"):
        run_generate(cfg)


# -- teach -------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_teach_each_family_on_kitti(variant, folders, kitti_sample, tmp_path) -> None:
    cfg = TeachConfig(str(kitti_sample), str(tmp_path / "maps.zarr"), str(folders[variant]),
                      run_for(variant), include=(RAW_0005, SELVAL), progress=False)
    summary = run_teach(cfg)
    assert summary.written == 2 and not summary.skipped
    group = zarr.open_group(cfg.out, mode="r")
    kind = "disparity" if variant == "relative" else "depth"
    assert group.attrs["teacher"]["output_kind"] == kind
    assert group[RAW_0005].shape == (375, 1242) and group[SELVAL].shape == (352, 1216)
    assert group[RAW_0005].attrs["units"] == ("m" if kind == "depth" else
                                              "relative disparity (affine-invariant)")
    if variant == "depth_pro":  # calibrated fx: P_rect_02, and the cropped intrinsics file
        assert group[RAW_0005].attrs["inputs"] == {"focal_px": 721.5377}
        assert group[SELVAL].attrs["inputs"] == {"focal_px": 721.5377}
