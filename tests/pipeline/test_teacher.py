"""Teacher registry, loading (local folder, offline error), inference, and ``dmd3c teach``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from data_schemas.errors import ConfigError, InputError
from pipeline.teacher import (
    TEACHERS,
    TINY_RANDOM,
    Teacher,
    TeacherConfig,
    resolve_teacher,
)
from pipeline.teachers.tiny import tiny_random_model
from tests.pipeline.generate_fixtures import KITTI_SAMPLE, scene_image

CFG = TeacherConfig(input_size=42, batch_size=2)


def test_registry_names_and_kinds() -> None:
    for size in ("small", "base", "large"):
        assert TEACHERS[f"depth-anything-v2-{size}"].output_kind == "disparity"
        for scene in ("indoor", "outdoor"):
            assert TEACHERS[f"depth-anything-v2-metric-{scene}-{size}"].output_kind == "depth"
    assert TEACHERS["depth-anything-v2-small"].source == "depth-anything/Depth-Anything-V2-Small-hf"
    assert TEACHERS[TINY_RANDOM].attrs()["test_teacher"] is True


def test_tiny_random_predicts_canvas_sized_finite_maps() -> None:
    rgb = np.stack([scene_image(i, (48, 96)) for i in range(3)])
    teacher = Teacher(TEACHERS[TINY_RANDOM], CFG)
    out = teacher.predict(rgb)
    assert out.shape == (3, 48, 96) and out.dtype == np.float32
    assert np.isfinite(out).all() and out.min() >= 0 and out.std() > 0
    assert teacher.precision == "fp32" and TeacherConfig().precision == "fp32"
    np.testing.assert_array_equal(out, teacher.predict(rgb))  # batching does not change results


def test_save_pretrained_folder_loads_back(tmp_path: Path) -> None:
    model = tiny_random_model(seed=0)
    model.save_pretrained(tmp_path / "tiny")
    spec = resolve_teacher(str(tmp_path / "tiny"))
    assert spec.name == "local" and spec.output_kind == "disparity" and not spec.test_teacher
    rgb = scene_image(5, (48, 96))[None]
    np.testing.assert_allclose(Teacher(spec, CFG).predict(rgb),
                               Teacher(TEACHERS[TINY_RANDOM], CFG).predict(rgb), rtol=1e-5)


def test_metric_folder_is_depth_kind(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "depth_anything", "depth_estimation_type": "metric"}))
    assert resolve_teacher(str(tmp_path)).output_kind == "depth"


def test_a_non_depth_model_is_refused_with_its_class_name(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(
        {"model_type": "bert", "architectures": ["BertForMaskedLM"]}))
    with pytest.raises(InputError, match="BertForMaskedLM.*not a depth-estimation model"):
        resolve_teacher(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "vit"}))
    with pytest.raises(InputError, match="ViTConfig.*not a depth-estimation model"):
        resolve_teacher(str(tmp_path))


def test_a_depth_model_without_our_processing_names_the_supported_ones(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "glpn"}))
    with pytest.raises(InputError, match="'glpn'.*supported: depth_anything, prompt_depth_"):
        resolve_teacher(str(tmp_path))


@pytest.mark.parametrize("name", [n for n in TEACHERS if n != TINY_RANDOM])
def test_offline_without_weights_fails_fast_with_instructions(name, monkeypatch,
                                                              tmp_path) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="--teacher PATH") as caught:
        resolve_teacher(name)
    assert time.perf_counter() - start < 10
    assert TEACHERS[name].source in str(caught.value) and repr(name) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_generate_offline_without_weights_is_one_line(monkeypatch, tmp_path, capsys) -> None:
    """What `make generate-data TEACHER=<registry name>` prints offline (exit 2, one line)."""
    import huggingface_hub.constants

    from dmd3c.cli import app, run_guarded

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    for name in ("depth-pro", "zoedepth-nyu-kitti", "prompt-depth-anything-vits"):
        args = ["generate", "--store", str(tmp_path / "s.zarr"), "--teacher", name]
        with pytest.raises(SystemExit) as stopped:
            run_guarded(lambda a=args: app(a, standalone_mode=True))
        assert stopped.value.code == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dmd3c: error: teacher weights for")
        assert repr(name) in lines[0]


def test_unknown_teacher_names_the_registry() -> None:
    with pytest.raises(InputError, match="depth-pro, zoedepth-nyu-kitti"):
        resolve_teacher("no-such-teacher")


def test_bad_teacher_options_name_the_allowed_values() -> None:
    with pytest.raises(ConfigError, match="'auto'; allowed: fp32, bf16, fp16"):
        TeacherConfig(precision="auto")
    with pytest.raises(ConfigError, match="allowed: official, transformers"):
        TeacherConfig(pos_embed="timm")


def test_teach_on_kitti_sample(tmp_path: Path) -> None:
    if not KITTI_SAMPLE.is_dir():
        pytest.skip(f"KITTI sample not found at {KITTI_SAMPLE}")
    from dmd3c.cli import app

    out = tmp_path / "maps.zarr"
    args = ["teach", "--kitti", str(KITTI_SAMPLE), "--out", str(out), "--teacher", TINY_RANDOM,
            "--teacher-input-size", "42", "--no-progress"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    group = zarr.open_group(str(out), mode="r")
    keys = group.attrs["keys"]
    key = "raw/2011_09_26/2011_09_26_drive_0001_sync/image_02/data/0000000005.png"
    assert key in keys and any(k.startswith("val_selection_cropped/image/") for k in keys)
    assert group[key].shape == (375, 1242) and group[key].attrs["complete"]
    assert group.attrs["teacher"]["test_teacher"] is True
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "0 written" in again.output
