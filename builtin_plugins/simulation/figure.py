"""The demo's figure: one page a biologist can show at a lab meeting, drawn from the export zip.

Five panels sharing the x axis (hours since the experiment started: the export's
``hours_since_experiment_created`` less the set-up before the start), one colour per
unit, named in the legend:

1. OD — calibrated OD600 when an OD calibration was active, else the photodiode
   signal (``od_readings``, labelled as such);
2. growth rate (h⁻¹, ``growth_rates``);
3. volume (mL, ``liquid_volumes``);
4. dilution rate (h⁻¹): media and alternative media added per hour over the vessel's
   volume, D = (ΔV_media / Δt) / V, in one-hour bins (``dosing_events``);
5. doses (mL): each media addition as an upward triangle above zero, each waste removal
   as a downward triangle below zero (``dosing_events``).

Everything comes from the CSVs of one export, so the figure and the data a person
downloads agree point for point and are on one clock.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

MEDIA_EVENTS = ("add_media", "add_alt_media")
WASTE_EVENTS = ("remove_waste",)
DILUTION_BIN_H = 1.0


def read_dataset(zf: zipfile.ZipFile, manifest: dict[str, Any], name: str) -> list[dict[str, str]]:
    """Every row of dataset ``name`` in the export (all its CSV files), or [] when it has none."""
    entry = next((d for d in manifest.get("datasets", []) if d["dataset_name"] == name), None)
    rows: list[dict[str, str]] = []
    for path in (entry or {}).get("csv_paths", []):
        rows += csv.DictReader(io.StringIO(zf.read(path).decode("utf-8"), newline=""))
    return rows


def by_unit(rows: Iterable[dict[str, str]], column: str, *, channel: str | None = None, start_h: float = 0.0
            ) -> dict[str, tuple[list[float], list[float]]]:
    """``unit -> (hours since start_h, values)`` of ``column``, in time order (one photodiode channel when given)."""
    out: dict[str, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for row in rows:
        if channel is not None and row.get("channel") not in (channel, None):
            continue
        try:
            hours, value = float(row["hours_since_experiment_created"]) - start_h, float(row[column])
        except (KeyError, TypeError, ValueError):
            continue
        xs, ys = out[row["pioreactor_unit"]]
        xs.append(hours)
        ys.append(value)
    return dict(out)


def dilution_rates(doses: list[dict[str, str]], volumes: dict[str, tuple[list[float], list[float]]],
                   bin_h: float = DILUTION_BIN_H, start_h: float = 0.0) -> dict[str, tuple[list[float], list[float]]]:
    """``unit -> (bin starts in h, D in h⁻¹)``: media added per hour in each bin over the mean volume in it.

    Units without a volume series use the first volume of any unit (or 14 mL, the simulated vial's start).
    """
    added: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for row in doses:
        if row.get("event") in MEDIA_EVENTS:
            try:
                hours = float(row["hours_since_experiment_created"]) - start_h
                added[row["pioreactor_unit"]][int(hours // bin_h)] += float(row["volume_change_ml"])
            except (KeyError, ValueError):
                continue
    out = {}
    for unit, bins in added.items():
        hours, vols = volumes.get(unit, ([], []))
        last = int(max(hours or [0.0]) // bin_h) if hours else max(bins)
        xs, ys = [], []
        for b in range(0, max(last, max(bins)) + 1):
            inside = [v for h, v in zip(hours, vols) if b * bin_h <= h < (b + 1) * bin_h]
            volume = sum(inside) / len(inside) if inside else (vols[0] if vols else 14.0)
            xs.append(b * bin_h)
            ys.append(bins.get(b, 0.0) / bin_h / volume)
        out[unit] = (xs, ys)
    return out


def bin_steps(bins: tuple[list[float], list[float]], end_h: float, bin_h: float = DILUTION_BIN_H
              ) -> tuple[list[float], list[float]]:
    """The ``(xs, ys)`` of :func:`dilution_rates` for a ``where="post"`` step line that draws every bin across
    its width, the last one too: its end (``xs[-1] + bin_h``, at most ``end_h``, the data's last hour) is added."""
    xs, ys = list(bins[0]), list(bins[1])
    if xs:
        end = min(xs[-1] + bin_h, max(end_h, xs[-1]))
        if end > xs[-1]:
            xs.append(end)
            ys.append(ys[-1])
    return xs, ys


def od_axis_label(calibrated: bool) -> str:
    return "OD600 (calibrated)" if calibrated else "OD (photodiode signal, uncalibrated)"


def plot_export(export_path: Path, path: Path, *, title: str, od_calibrated: bool = False,
                od_channel: str = "2", start_h: float = 0.0) -> Path:
    """Draw the figure (PNG) of the export at ``export_path`` into ``path``; returns ``path``.

    Args:
        export_path: An export zip (``manifest.json`` and per-dataset CSVs).
        path: Where the PNG goes.
        title: The figure's title (name the experiment).
        od_calibrated: Whether the OD values are calibrated OD600 (labels the axis).
        od_channel: The photodiode channel whose OD is drawn (the 90° one by default).
        start_h: Hours between the experiment's creation and its start (x = 0), e.g. the time
            the pump calibrations took before the profile started.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with zipfile.ZipFile(export_path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        od = by_unit(read_dataset(zf, manifest, "od_readings"), "od_reading", channel=od_channel, start_h=start_h)
        rates = by_unit(read_dataset(zf, manifest, "growth_rates"), "rate", start_h=start_h)
        volumes = by_unit(read_dataset(zf, manifest, "liquid_volumes"), "liquid_volume", start_h=start_h)
        doses = read_dataset(zf, manifest, "dosing_events")
    units = sorted(set(od) | set(rates) | set(volumes) | {r["pioreactor_unit"] for r in doses})
    colours = {unit: plt.get_cmap("tab10")(i % 10) for i, unit in enumerate(units)}
    dilution = dilution_rates(doses, volumes, start_h=start_h)

    fig, axes = plt.subplots(5, 1, figsize=(10, 13), sharex=True,
                             gridspec_kw={"height_ratios": [3, 2, 2, 2, 2]})
    panels = [(axes[0], od, od_axis_label(od_calibrated), False), (axes[1], rates, "growth rate (h⁻¹)", False),
              (axes[2], volumes, "volume (mL)", True)]  # the volume changes only at doses: steps
    for ax, data, label, steps in panels:
        for unit in units:
            if unit in data and steps:
                ax.step(*data[unit], where="post", lw=1, color=colours[unit], label=unit)
            elif unit in data:
                ax.plot(*data[unit], lw=1, color=colours[unit], label=unit)
        ax.set_ylabel(label)
    end_h = max((max(xs) for xs, _ in (*od.values(), *rates.values(), *volumes.values()) if xs), default=0.0)
    for unit in units:  # a unit that received no media: D = 0 over the experiment
        bins = dilution.get(unit) or ([0.0, end_h], [0.0, 0.0])
        axes[3].step(*bin_steps(bins, end_h), where="post", lw=1.2, color=colours[unit], label=unit)
    axes[3].set_ylabel(f"dilution rate (h⁻¹,\n{DILUTION_BIN_H:g} h bins)")
    axes[3].set_ylim(bottom=0)
    for unit in units:
        mine = [r for r in doses if r["pioreactor_unit"] == unit]
        for events, sign, marker in ((MEDIA_EVENTS, 1, "^"), (WASTE_EVENTS, -1, "v")):
            points = [(float(r["hours_since_experiment_created"]) - start_h, sign * abs(float(r["volume_change_ml"])))
                      for r in mine if r.get("event") in events]
            if points:
                axes[4].scatter(*zip(*points), s=14, marker=marker, color=colours[unit], alpha=0.8,
                                edgecolors="none")
    axes[4].axhline(0, color="grey", lw=0.6)
    axes[4].set_ylabel("doses (mL)\n▲ media  ▼ waste")
    axes[4].set_xlabel("hours since the experiment started")
    for ax in axes:
        ax.grid(alpha=0.3)
        if not ax.has_data():
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="grey")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[u], lw=2, label=u) for u in units]
    handles += [Line2D([], [], color="black", marker="^", ls="", label="media added"),
                Line2D([], [], color="black", marker="v", ls="", label="waste removed")]
    fig.legend(handles=handles, loc="upper right", ncol=len(handles), fontsize=9, frameon=False,
               bbox_to_anchor=(0.98, 0.965))
    fig.suptitle(title, x=0.02, ha="left", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
