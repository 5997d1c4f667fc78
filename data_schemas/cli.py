"""``dmd3c inspect`` (summary, JSON, quick-look montage) and ``dmd3c migrate`` of a sample store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from data_schemas.errors import ConfigError, StoreError
from data_schemas.sample_schema import parse_rgb_codec

if TYPE_CHECKING:
    from data_schemas.sample_store import Sample, SampleStore


def inspect_command(
    store: Annotated[str, typer.Argument(
        metavar="STORE", help="Store path or fsspec URL (s3://, gs://, ...).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    png: Annotated[Path | None, typer.Option(
        "--png", metavar="PATH", help="Write a montage rgb | sparse | teacher depth of a few "
        "samples, on one depth scale with its colour bar (m).")] = None,
    num_samples: Annotated[int, typer.Option(
        "--samples", min=1, metavar="N",
        help="Samples in the --png montage (evenly spread).")] = 4,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Also read every chunk (checksums) and check physical ranges; fail "
                         "(exit 2) on corruption or a shard with data but no commit record."),
    ] = False,
) -> None:
    """Validate a sample store and summarise it (statistics computed with dask)."""
    from data_schemas.sample_store import SampleStore  # zarr, dask: only when a store is read
    from data_schemas.store_stats import store_summary
    from data_schemas.validate import validate

    opened = SampleStore.open(store)
    report = validate(opened, allow_pending=not strict, strict=strict)
    summary = store_summary(opened, report)
    if png is not None:
        from data_schemas.quicklook import montage, write_png  # OpenCV

        write_png(png, montage(_spread_samples(opened, num_samples)))
        summary["png"] = str(png)
    typer.echo(json.dumps(summary, indent=1) if as_json else format_summary(summary))


def _spread_samples(store: SampleStore, count: int) -> list[Sample]:
    if store.num_samples == 0:
        raise StoreError(store.url, "no committed samples to draw for --png")
    indices = sorted({round(i * (store.num_samples - 1) / max(count - 1, 1))
                      for i in range(min(count, store.num_samples))})
    return [store.read_sample(i) for i in indices]


def _brief(attrs: dict[str, Any], fields: tuple[str, ...]) -> str:
    """A few named fields of an attribute dict (``--json`` has all of them)."""
    shown = [f"{name}={attrs[name]}" for name in fields if name in attrs]
    return ", ".join(shown) or "-"


def format_summary(summary: dict[str, Any]) -> str:
    """Human-readable lines of a :func:`store_summary`."""
    lines = [
        f"store          {summary['store']}",
        f"schema         dmd3c.sample_store {summary['schema_version']}",
        f"canvas         {summary['canvas'][0]} x {summary['canvas'][1]} (H x W)",
        f"samples        {summary['num_samples']} in {summary['shards_committed']} committed "
        f"shards of {summary['shard_size']} ({summary['shards_pending']} pending)",
        f"skipped        {summary['num_skipped']} {summary['skipped_reasons'] or ''}".rstrip(),
        f"teacher        {_brief(summary['teacher'], ('name', 'output_kind', 'warning'))}",
        f"sensor         {_brief(summary['sensor'], ('preset', 'beams', 'azimuth_step_deg'))}",
    ]
    for name in ("sparse_depth", "teacher_depth"):
        stats = summary.get(name)
        if stats:
            lines.append(f"{name:<15}valid {100 * stats['valid_fraction']:.2f}%  range "
                         f"{stats['min_m']:.2f}-{stats['max_m']:.2f} m  mean "
                         f"{stats['mean_m']:.2f} m  histogram {stats['histogram']}")
    if summary.get("values_checked"):
        lines.append("integrity      every chunk read: checksums and physical ranges OK")
    if summary.get("shards_pending_with_data"):
        lines.append(f"warning        shards with data but no commit record (interrupted "
                     f"writes): {summary['shards_pending_with_data']}")
    return "\n".join(lines)


def migrate_command(
    source: Annotated[str, typer.Argument(
        metavar="SOURCE", help="Existing store (schema 1.x or 2.x).")],
    target: Annotated[str, typer.Argument(
        metavar="TARGET", help="New store to write (schema 2.0).")],
    rgb_codec: Annotated[str, typer.Option(
        "--rgb-codec", metavar="CODEC",
        help="rgb codec of the new store: lossless, or jpeg (quality 95).")] = "lossless",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace TARGET.")] = False,
) -> None:
    """Convert a sample store to the current schema (2.0): checksums, no padding rows."""
    from data_schemas.migrate import migrate_store  # zarr: only when a store is read

    try:
        codec = parse_rgb_codec(rgb_codec)
    except ValueError as err:
        raise ConfigError(f"--rgb-codec {rgb_codec!r}: {err}") from err
    report = migrate_store(source, target, codec, overwrite=overwrite, progress=True)
    typer.echo(f"migrated {report.samples} samples in {report.shards} shards of {report.source} "
               f"(schema {report.source_version}) to {report.target} (schema 2.0)")
