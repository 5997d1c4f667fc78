"""Store geometry: canvas, shard size and number of shards, and the root attributes."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from data_schemas.sample_schema import (
    DEFAULT_SHARD_SIZE,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    RgbCodec,
    parse_rgb_codec,
)


@dataclass(frozen=True)
class StoreLayout:
    """A store of ``num_shards`` shards of ``shard_size`` sample slots on an H x W canvas.

    ``rgb_codec``: ``"lossless"`` (default) or ``"jpeg"`` (opt-in, quality 95).
    """

    height: int
    width: int
    num_shards: int
    shard_size: int = DEFAULT_SHARD_SIZE
    rgb_codec: RgbCodec = "lossless"

    def __post_init__(self) -> None:
        for name in ("height", "width", "shard_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_shards < 0:
            raise ValueError(f"num_shards must be >= 0, got {self.num_shards}")
        parse_rgb_codec(self.rgb_codec)

    @property
    def capacity(self) -> int:
        """Number of sample slots (rows) of every array."""
        return self.num_shards * self.shard_size

    def shard_rows(self, shard: int) -> slice:
        """Rows of ``shard`` in every array."""
        self.check_shard(shard)
        return slice(shard * self.shard_size, (shard + 1) * self.shard_size)

    def check_shard(self, shard: int) -> None:
        if not 0 <= shard < self.num_shards:
            raise IndexError(f"shard {shard} out of range [0, {self.num_shards})")

    @classmethod
    def for_samples(cls, num_samples: int, height: int, width: int,
                    shard_size: int = DEFAULT_SHARD_SIZE,
                    rgb_codec: RgbCodec = "lossless") -> StoreLayout:
        """The smallest layout holding ``num_samples`` samples."""
        return cls(height, width, -(-num_samples // shard_size), shard_size, rgb_codec)


@dataclass(frozen=True)
class StoreInfo:
    """What produced the store; saved in the root attributes next to the schema."""

    generator: dict[str, object] = field(default_factory=dict)
    teacher: dict[str, object] = field(default_factory=dict)
    sensor: dict[str, object] = field(default_factory=dict)
    code_version: str = ""


def code_version() -> str:
    """``dmd3c <version>`` plus the git commit of the source tree when there is one."""
    try:
        version = metadata.version("dmd3c")
    except metadata.PackageNotFoundError:
        version = "unknown"
    repo = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return f"dmd3c {version}"
    return f"dmd3c {version} (git {sha.strip()})"


def root_attributes(layout: StoreLayout, info: StoreInfo) -> dict[str, object]:
    """The JSON root attributes of a new store."""
    return {
        "schema": {"name": SCHEMA_NAME, "version": SCHEMA_VERSION},
        "canvas": [layout.height, layout.width],
        "shard_size": layout.shard_size,
        "num_shards": layout.num_shards,
        "rgb_codec": layout.rgb_codec,
        "generator": info.generator,
        "teacher": info.teacher,
        "sensor": info.sensor,
        "code_version": info.code_version or code_version(),
    }


def layout_from_attributes(attrs: dict[str, object]) -> StoreLayout:
    """The layout saved in a store's root attributes (ValueError when malformed)."""
    canvas, num_shards, shard_size = attrs["canvas"], attrs["num_shards"], attrs["shard_size"]
    if not (isinstance(canvas, list) and len(canvas) == 2 and isinstance(num_shards, int)
            and isinstance(shard_size, int)):
        raise ValueError(f"malformed layout attributes: canvas={canvas!r}, "
                         f"num_shards={num_shards!r}, shard_size={shard_size!r}")
    codec = parse_rgb_codec(str(attrs.get("rgb_codec", "lossless")))
    return StoreLayout(int(canvas[0]), int(canvas[1]), num_shards, shard_size, codec)
