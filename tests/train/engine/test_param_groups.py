"""Weight-decay groups vs a transcription of the release's ``utils.config_param``."""

from __future__ import annotations

import torch
from torch import nn

from train.engine.param_groups import param_groups, split_decay
from train.model import BPNet


def release_config_param(model: nn.Module) -> list[dict[str, object]]:
    """The release's rule: one wd-0 group per parameter with len(shape) == 1, then the rest."""
    groups: list[dict[str, object]] = []
    others = []
    for _, param in model.named_parameters():
        if len(param.shape) == 1:
            groups.append({"params": [param], "weight_decay": 0.0})
        else:
            others.append(param)
    groups.append({"params": others})
    return groups


def test_bpnet_groups_equal_the_release_rule() -> None:
    with torch.device("meta"):  # shapes and names only: no 89M-parameter init
        model = BPNet()
    release = release_config_param(model)
    names = {id(p): n for n, p in model.named_parameters()}
    release_no_decay = [names[id(g["params"][0])] for g in release[:-1]]  # type: ignore[index]
    release_decay = [names[id(p)] for p in release[-1]["params"]]  # type: ignore[attr-defined]
    split = split_decay(model)
    assert list(split.no_decay) == release_no_decay
    assert list(split.decay) == release_decay
    assert (len(split.no_decay), len(split.decay)) == (561, 298)  # BN weights/biases, conv biases
    groups = param_groups(model, 0.05)
    assert [g["weight_decay"] for g in groups] == [0.0, 0.05]
    assert [len(g["params"]) for g in groups] == [561, 298]
    assert sum(p.numel() for g in groups for p in g["params"]) == 89_873_730


def test_without_the_rule_everything_decays() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    groups = param_groups(model, 0.1, no_decay_1d=False)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.1
    assert len(groups[0]["params"]) == 4


def test_adamw_steps_equal_one_group_per_parameter() -> None:
    """Our two groups update exactly as the release's one-group-per-1-D-parameter."""
    torch.manual_seed(0)
    model_a = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 1, 1))
    model_b = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 1, 1))
    model_b.load_state_dict(model_a.state_dict())
    opt_a = torch.optim.AdamW(release_config_param(model_a), lr=1e-2, weight_decay=0.05)
    opt_b = torch.optim.AdamW(param_groups(model_b, 0.05), lr=1e-2, weight_decay=0.05)
    x = torch.randn(2, 3, 8, 8)
    for _ in range(3):
        for model, opt in ((model_a, opt_a), (model_b, opt_b)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for pa, pb in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(pa, pb)
