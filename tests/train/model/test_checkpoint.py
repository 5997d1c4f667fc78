"""save_checkpoint -> load_checkpoint round trips (released format and ours), clear mismatches."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from data_schemas.errors import CheckpointError, ConfigError, InputNotFoundError
from train.model import BPNet, load_checkpoint, pick_weights, read_checkpoint, save_checkpoint


def small_net() -> nn.Module:
    """A tiny module with parameters and BN buffers (stands in for BPNet where size is moot)."""
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


def randomise(module: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for value in module.state_dict().values():
            if value.is_floating_point():
                value.copy_(torch.rand(value.shape, generator=gen))
            else:
                value.fill_(seed)
    return module


def test_released_format_round_trip_bpnet(tmp_path: Path) -> None:
    saved = BPNet()
    path = tmp_path / "official.pth"
    save_checkpoint(path, saved, epoch=7, best_metric_ema=0.75)
    payload = torch.load(path, weights_only=True)
    assert sorted(payload) == ["best_metric_ema", "epoch", "net"]
    ckpt = load_checkpoint(path, map_location="cpu")
    assert isinstance(ckpt.model, BPNet) and ckpt.epoch == 7 and ckpt.best_metric_ema == 0.75
    loaded = ckpt.model.state_dict()
    for key, value in saved.state_dict().items():
        assert torch.equal(loaded[key], value), key
    assert all(p.device.type == "cpu" for p in ckpt.model.parameters())


def test_file_written_by_plain_torch_save_loads(tmp_path: Path) -> None:
    """A file in the released layout that we did not write ourselves."""
    saved = randomise(small_net(), seed=2)
    path = tmp_path / "plain.pth"
    torch.save({"net": saved.state_dict(), "epoch": 3, "best_metric_ema": 1.5}, path)
    ckpt = load_checkpoint(path, model=small_net())
    assert torch.equal(ckpt.model[0].weight, saved[0].weight) and ckpt.epoch == 3


def test_our_superset_format_loads_net_and_ema(tmp_path: Path) -> None:
    net, ema = randomise(small_net(), seed=3), randomise(small_net(), seed=4)
    path = tmp_path / "ours.pth"
    extra = {"ema": ema.state_dict(), "step": 12, "config": {"lr": 1e-3}}
    save_checkpoint(path, net, epoch=1, extra=extra)
    ckpt = load_checkpoint(path, model=small_net())
    assert torch.equal(ckpt.model[0].weight, net[0].weight)
    assert ckpt.extra["step"] == 12 and ckpt.extra["config"] == {"lr": 1e-3}
    from_ema = load_checkpoint(path, model=small_net(), key="ema")
    assert torch.equal(from_ema.model[1].running_mean, ema[1].running_mean)


def test_ddp_module_prefix_is_stripped(tmp_path: Path) -> None:
    saved = randomise(small_net(), seed=5)
    state = {f"module.{k}": v for k, v in saved.state_dict().items()}
    path = tmp_path / "ddp.pth"
    torch.save({"net": state, "epoch": 0, "best_metric_ema": 0.0}, path)
    ckpt = load_checkpoint(path, model=small_net())
    assert torch.equal(ckpt.model[0].bias, saved[0].bias)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda s: s.pop("1.running_var"), "missing key '1.running_var'"),
        (lambda s: s.__setitem__("0.bias", torch.zeros(5)), "key '0.bias' has shape"),
        (lambda s: s.__setitem__("2.weight", torch.zeros(1)), "unexpected key '2.weight'"),
    ],
)
def test_mismatch_names_the_first_bad_key(tmp_path: Path, edit, match: str) -> None:
    state = small_net().state_dict()
    edit(state)
    path = tmp_path / "bad.pth"
    torch.save({"net": state, "epoch": 0, "best_metric_ema": 0.0}, path)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path, model=small_net())


def test_missing_state_dict_and_non_dict(tmp_path: Path) -> None:
    path = tmp_path / "x.pth"
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="no state dict under 'net'"):
        load_checkpoint(path, model=small_net())
    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match="expected a dict"):
        load_checkpoint(path, model=small_net())


def test_extra_cannot_shadow_official_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="official keys"):
        save_checkpoint(tmp_path / "y.pth", small_net(), extra={"epoch": 3})


def test_auto_weights_pick_ema_only_when_present(tmp_path: Path) -> None:
    net, ema = randomise(small_net(), seed=6), randomise(small_net(), seed=7)
    ours, released = tmp_path / "ours.pth", tmp_path / "released.pth"
    save_checkpoint(ours, net, extra={"ema": ema.state_dict()})
    save_checkpoint(released, net)
    assert pick_weights(read_checkpoint(ours)) == "ema"
    assert pick_weights(read_checkpoint(released)) == "net"
    assert pick_weights(read_checkpoint(ours), "net") == "net"
    auto = load_checkpoint(ours, model=small_net(), key="auto")
    assert torch.equal(auto.model[0].weight, ema[0].weight)
    auto = load_checkpoint(released, model=small_net(), key="auto")
    assert torch.equal(auto.model[0].weight, net[0].weight)
    with pytest.raises(ConfigError, match="one of auto, ema, net; got 'best'"):
        pick_weights(read_checkpoint(ours), "best")


def test_the_reader_names_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="checkpoint not found"):
        read_checkpoint(tmp_path / "none.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    for mmap in (False, True):
        with pytest.raises(CheckpointError, match=r"text.pt: is not a PyTorch checkpoint "
                           r"\(starts with b'not a ch', 16 bytes\), expected a file written by "
                           r"torch.save$"):
            read_checkpoint(tmp_path / "text.pt", mmap=mmap)


class _RunsCode:
    """Pickles as a call that would create the folder ``marker`` when unpickled without
    weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def _truncated(path: Path) -> str:
    torch.save({"net": small_net().state_dict()}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return f"is truncated or damaged ({len(data) // 2} bytes; the zip directory"


def _empty(path: Path) -> str:
    path.write_bytes(b"")
    return "is empty (0 bytes), expected a file written by torch.save"


def _code(path: Path) -> str:
    torch.save({"net": small_net().state_dict(), "x": _RunsCode(path.with_name("ran"))}, path)
    return f"holds a pickled Python object ({os.mkdir.__module__}.mkdir), expected only tensors"


def _module(path: Path) -> str:
    torch.save({"net": small_net()}, path)  # the module object, not its state dict
    return "holds a pickled Python object (torch.nn.modules.container.Sequential), expected"


def _numpy(path: Path) -> str:
    with open(path, "wb") as handle:
        np.save(handle, np.zeros(3))
    size = path.stat().st_size
    return f"is not a PyTorch checkpoint (a NumPy .npy array, {size} bytes), expected a file"


def _pickle(path: Path) -> str:
    path.write_bytes(pickle.dumps({"net": 1}, protocol=4))
    return "is not a PyTorch checkpoint (a plain Python pickle, "


@pytest.mark.parametrize("make", [_truncated, _empty, _code, _module, _numpy, _pickle])
def test_unreadable_files_are_refused_in_one_line_saying_why(tmp_path: Path, make) -> None:
    path = tmp_path / "model.pt"
    found = make(path)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {found}"), message
    assert "\n" not in message and "\x1b" not in message
    assert not (tmp_path / "ran").exists()  # the pickled call was refused, never run


def test_refusals_of_the_content_say_what_was_expected(tmp_path: Path) -> None:
    path = tmp_path / "x.pth"
    torch.save({"model": {}, "step": 3}, path)
    with pytest.raises(CheckpointError, match=r"has no state dict under 'net' \(its keys: model, "
                       r"step\), expected one as in released BP-Net/DMD3C files"):
        load_checkpoint(path, model=small_net())
    state = small_net().state_dict()
    state["0.weight"] = torch.zeros(4, 3, 5, 5)
    torch.save({"net": state}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, model=small_net())
    assert str(info.value) == (
        f"{path}: does not match the model: key '0.weight' has shape (4, 3, 5, 5), model has "
        f"(4, 3, 3, 3); expected the 7 tensors of Sequential with the same names and shapes: is "
        f"it a checkpoint of another network?")
