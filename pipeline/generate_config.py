"""What ``dmd3c generate`` is asked to do: :class:`GenerateConfig` and the configs it nests.

The command's options derive from these dataclasses (:mod:`pipeline.config_options`), so this
module stays light to import: ``dmd3c --help`` reads it without loading zarr, Ray or a
teacher. The job itself is :mod:`pipeline.job` and :mod:`pipeline.generate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from data_schemas.errors import ConfigError
from data_schemas.sample_schema import DEFAULT_SHARD_SIZE
from pipeline.camera import IntrinsicsSampler, MetricRange
from pipeline.corpus import CanvasConfig, CorpusConfig
from pipeline.sensors import SensorSpec, load_sensor
from pipeline.simulate import SimConfig
from pipeline.teacher import DEFAULT_TEACHER, TeacherConfig


@dataclass(frozen=True)
class SensorChoice:
    """The simulated LiDAR."""

    preset: str = "hdl64e"
    """Preset name in configs/sensors (hdl64e, vlp32c, ...) or a YAML path."""
    beams: int | None = None
    """Thin the preset to this many lasers (must divide its count); None = all."""

    def load(self) -> SensorSpec:
        return load_sensor(self.preset, beams=self.beams)


@dataclass(frozen=True)
class FaultInjection:
    """Test-only faults (never part of the store identity)."""

    kill_shard: int = -1
    """The worker finishing this shard exits abruptly (os._exit) the first time."""
    marker: str = ""
    """File created before the kill; its existence means "already killed once"."""
    shard_delay_s: float = 0.0
    """Sleep this long in every shard's last step (to kill a driver mid-run)."""


@dataclass(frozen=True)
class RunConfig:
    """How the job runs; changing these never changes the store's content."""

    address: str | None = None
    """Ray cluster address (``host:port``, ``ray://...``, ``auto``); None = RAY_ADDRESS or
    an embedded single-node Ray."""
    workers: int | None = None
    """Embedded Ray only: concurrent CPU tasks (decode, simulate+write); None = all cores."""
    teacher_actors: int | None = None
    """Teacher actors; None = one per GPU of the cluster, or 1 without GPUs."""
    teacher_cpus: float | None = None
    """CPUs reserved per teacher actor; None = 0.5 with a GPU, 1 on CPU."""
    max_in_flight: int | None = None
    """Shards submitted at once (bounds memory); None = 2 x (workers + actors)."""
    retries: int = 3
    """Ray retries of a task / restarts of an actor whose process died."""
    overwrite: bool = False
    """Replace an existing store made with a different config."""
    break_lease: bool = False
    """Take the store's lease even from a job that looks alive (it must be dead)."""
    progress: bool = True
    """Show a progress bar (per sample, with ETA) on stderr."""
    fault: FaultInjection = field(default_factory=FaultInjection)


@dataclass(frozen=True)
class GenerateConfig:
    """Everything ``dmd3c generate`` needs; all but ``store`` and ``run`` define the store."""

    store: str
    """Output store: local path or fsspec URL."""
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    canvas: CanvasConfig = field(default_factory=CanvasConfig)
    teacher: str = DEFAULT_TEACHER
    """Registry name, local folder (save_pretrained / huggingface-cli download) or hub id."""
    teacher_run: TeacherConfig = field(default_factory=TeacherConfig)
    sensor: SensorChoice = field(default_factory=SensorChoice)
    sim: SimConfig = field(default_factory=SimConfig)
    intrinsics: IntrinsicsSampler = field(default_factory=IntrinsicsSampler)
    metric: MetricRange = field(default_factory=MetricRange)
    seed: int = 0
    """Global seed; every per-sample random choice derives from (seed, sample key)."""
    shard_size: int = DEFAULT_SHARD_SIZE
    """Samples per shard = unit of work and of commit."""
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.seed < 0:
            raise ConfigError(f"--shard-size must be >= 1 and --seed >= 0, got "
                              f"{self.shard_size} and {self.seed}")
