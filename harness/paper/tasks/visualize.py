"""The visualize task (report Task 5, Figs. 5.2-5.5): look inside the trained CNN baseline.

A cell gets the suite's CNN on one backend, either trained here (``train_and_measure``, as the
classification task does) or loaded from an earlier classification run that kept its weights
(``options.from_run``), and computes, for every convolution layer:

- its kernels (Fig. 5.2): all filters of a layer with one input channel, the first input channel of
  every filter of the others (``weight_channels="all"`` adds every channel);
- filter visualisation (Figs. 5.3-5.4): gradient ascent from noise on the input to maximise each
  filter's mean activation;
- feature maps (Figs. 5.3-5.4): the layer's output for chosen test digits (the report's "2" and "9");
- deep dream (Fig. 5.5): gradient ascent from those digits on the layer's mean squared activation.

The arrays go to ``inspection.npz`` in the cell's folder and rendering draws every figure from them,
so ``harness report`` redraws without a framework and never retrains.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    field_validator,
)

from harness.cells import Cell, CellResult, RunContext, StoredCell
from harness.errors import UserError
from harness.render import grids
from harness.render.tables import Table
from harness.suite.models import StrictModel
from harness.suite.spec import Conv2D, ModelSpec
from harness.tasks.base import Task
from harness.tasks.training import accuracy, suite_splits, train_and_measure

if TYPE_CHECKING:

    from harness.backends.base import Backend
    from harness.data import Splits
    from harness.suite.schema import Suite

#: Filter visualisation starts from uniform noise over the whole pixel range: on grey noise with little
#: spread (Chollet's 0.4-0.6) half the ReLU filters of a small CNN are silent everywhere, so have no gradient.
NOISE_RANGE = (0.0, 1.0)
INSPECTION_FILE = "inspection.npz"


class VisualizeOptions(StrictModel):
    """Settings of the visualize task."""

    from_run: str | None = Field(
        None, description="Inspect the model of an earlier classification run instead of training one: its run id "
        "(in the reports store) or its folder. The run must have kept weights (options.save_weights=true) for the "
        "suite's model on each backend of the matrix.")
    save_weights: bool = Field(False, description="Keep the model trained here in its cell folder (for from_run).")
    digits: list[int] = Field([2, 9], min_length=1, description="Test digits (labels) whose feature maps and dreams "
                              "are drawn; the first test image of each label is used.")
    weight_channels: Literal["first", "all"] = Field(
        "first", description="Kernels drawn for layers with several input channels: the first channel of every "
        "filter, or also a grid of every filter x every channel.")
    ascent_filters: PositiveInt | None = Field(
        None, description="Filters of each conv layer visualised by gradient ascent, from the first; None = all.")
    ascent_steps: PositiveInt = Field(40, description="Gradient-ascent steps of filter visualisation.")
    ascent_step_size: PositiveFloat = Field(1.0, description="Step of filter visualisation (L2-normalised gradient).")
    dream_steps: PositiveInt = Field(500, description="Gradient-ascent steps of deep dream (report: 500).")
    dream_step_size: PositiveFloat = Field(0.2, description="Step of deep dream (report: 0.2).")
    noise_seed: NonNegativeInt = Field(0, description="Seed of the noise filter visualisation starts from.")
    noise_draws: PositiveInt = Field(64, description="Noise images drawn per layer; each filter starts from the one "
                                     "it responds to most.")

    @field_validator("digits")
    @classmethod
    def _labels(cls, digits: list[int]) -> list[int]:
        bad = [digit for digit in digits if not 0 <= digit <= 9]
        if bad:
            raise ValueError(f"digits must be labels 0..9, got {bad}")
        return digits


def conv_layers(spec: ModelSpec) -> list[int]:
    """Spec indices of the convolution layers."""
    return [index for index, layer in enumerate(spec.layers) if isinstance(layer, Conv2D)]


def first_of_each(labels: np.ndarray, digits: list[int]) -> np.ndarray:
    """Index of the first sample of each label in ``digits``; a UserError names a label with none."""
    present = np.array([np.any(labels == digit) for digit in digits])
    if not present.all():
        missing = [digit for digit, found in zip(digits, present) if not found]
        raise UserError(f"options.digits: no test image of label {missing} in the test split")
    return np.array([int(np.argmax(labels == digit)) for digit in digits])


def inspect(backend: "Backend", model: Any, spec: ModelSpec, splits: "Splits", options: VisualizeOptions, *,
            device: str) -> dict[str, np.ndarray]:
    """Every array the figures need, keyed ``<what>_<n>`` for the n-th conv layer (from 1)."""
    chosen = first_of_each(splits.y_test, options.digits)
    digit_images = splits.x_test[chosen]
    arrays: dict[str, np.ndarray] = {"digits": np.array(options.digits), "digit_images": digit_images,
                                     "test_index": chosen}
    noise = np.random.default_rng(options.noise_seed)
    for number, index in enumerate(conv_layers(spec), start=1):
        layer: Conv2D = spec.layers[index]  # type: ignore[assignment]
        arrays[f"kernel_{number}"] = backend.kernel(model, index, spec=spec)
        arrays[f"maps_{number}"] = backend.activations(model, digit_images, index, spec=spec, device=device)
        filters = np.arange(min(layer.filters, options.ascent_filters or layer.filters))
        start = best_noise(backend, model, spec, index, filters, noise, options.noise_draws, device=device)
        arrays[f"ascent_{number}"], arrays[f"ascent_objective_{number}"] = backend.ascend(
            model, start, index, spec=spec, filter_index=filters, steps=options.ascent_steps,
            step_size=options.ascent_step_size, device=device)
        arrays[f"dream_{number}"], arrays[f"dream_objective_{number}"] = backend.ascend(
            model, digit_images, index, spec=spec, filter_index=None, steps=options.dream_steps,
            step_size=options.dream_step_size, device=device)
    return arrays


def best_noise(backend: "Backend", model: Any, spec: ModelSpec, layer_index: int, filters: np.ndarray,
               noise: np.random.Generator, draws: int, *, device: str) -> np.ndarray:
    """A start image per filter: of ``draws`` noise images, the one with the filter's highest mean
    activation. A ReLU filter silent on its start image has no gradient and would never move; deep
    filters of a trained CNN are silent on most noise, so drawing several saves most of them."""
    candidates = noise.uniform(*NOISE_RANGE, (draws, *spec.input_shape)).astype(np.float32)
    response = backend.activations(model, candidates, layer_index, spec=spec, device=device)
    response = response.reshape(draws, -1, response.shape[-1]).mean(axis=1)  # (draws, filters)
    return candidates[np.argmax(response[:, filters], axis=0)]


def ascent_summary(arrays: dict[str, np.ndarray], layers: int) -> dict[str, float]:
    """Mean objective before and after each ascent per conv layer (the evidence it climbed), and how
    many visualised filters were silent on their start image (those cannot move)."""
    summary = {}
    for number in range(1, layers + 1):
        for kind in ("ascent", "dream"):
            objective = arrays[f"{kind}_objective_{number}"]
            summary[f"conv{number}_{kind}_start"] = float(objective[0].mean())
            summary[f"conv{number}_{kind}_end"] = float(objective[-1].mean())
        start = arrays[f"ascent_objective_{number}"][0]
        summary[f"conv{number}_filters_shown"] = len(start)
        summary[f"conv{number}_silent_filters"] = int(np.sum(start <= 0))
    return summary


class VisualizeTask(Task):
    """Figures 5.2-5.5 of the report."""

    name = "visualize"
    table_stems = ("table",)
    Options = VisualizeOptions
    columns = ("suite", "model", "backend", "device", "seed", "source", "test_accuracy", "status", "error")

    def plan(self, suite: "Suite") -> list[Cell]:
        if len(suite.models) != 1 or not conv_layers(suite.models[0]):
            raise UserError(f"suite {suite.name}: the visualize task needs exactly one model with conv2d layers")
        config = suite.resolved()
        model = suite.models[0]
        return [Cell(suite.name, self.name, model.name, backend, device, seed, config)
                for backend in suite.matrix.backends for device in suite.matrix.devices for seed in suite.matrix.seeds]

    def check(self, suite: "Suite", reports: Path) -> None:
        """A stored model (``options.from_run``) must exist and fit before the run writes anything."""
        options = self.options(suite)
        if not options.from_run:
            return
        from harness import checkpoints

        model = suite.models[0]
        for backend in suite.matrix.backends:
            stored = checkpoints.find(options.from_run, model.name, backend, reports=reports)
            if not conv_layers(stored.spec):
                raise UserError(f"from_run={options.from_run}: model {model.name!r} has no conv2d layer")

    def run(self, cell: Cell, context: RunContext) -> CellResult:
        suite, options, backend, device = self.setup(cell)
        folder = context.artifact_dir(cell)
        splits = suite_splits(suite)
        if options.from_run:
            from harness import checkpoints

            stored = checkpoints.find(options.from_run, cell.model, cell.backend, reports=context.reports,
                                      seed=cell.seed)
            spec: ModelSpec = stored.spec
            model = checkpoints.load(stored, backend, device=device)
            predicted = backend.predict(model, splits.x_test, device=device)
            record: dict[str, Any] = {"source": f"run {stored.run_id}", "epochs": stored.record.get("epochs"),
                                      "test_accuracy": accuracy(predicted, splits.y_test)}
            artifacts: dict[str, Any] = {"weights_from": str(stored.weights)}
        else:
            spec = suite.model(cell.model)
            epochs = suite.model(cell.model).epochs or suite.train.epochs
            context.observer.epochs = epochs
            record, artifacts, model = train_and_measure(
                backend, spec, suite, epochs=epochs, seed=cell.seed, device=device, observer=context.observer,
                weights_dir=folder if options.save_weights else None)
            record["source"] = "trained here"
        arrays = inspect(backend, model, spec, splits, options, device=device)
        np.savez_compressed(folder / INSPECTION_FILE, **arrays)
        record.update(device=device, **ascent_summary(arrays, len(conv_layers(spec))))
        artifacts.update(inspection=str((folder / INSPECTION_FILE).relative_to(context.run_dir)),
                         spec=spec.model_dump(mode="json", include=set(ModelSpec.model_fields)))
        return CellResult("ok", record, artifacts)

    def summary(self, result: CellResult) -> str:
        r = result.record
        layers = sorted({key.split("_")[0] for key in r if key.startswith("conv")})
        climbs = ", ".join(f"{layer} {r[f'{layer}_ascent_start']:.3g}->{r[f'{layer}_ascent_end']:.3g}"
                           for layer in layers)
        return f"{r['source']}, test {r['test_accuracy']:.2f}%, filter ascent {climbs}"

    def tables(self, suite: "Suite", cells: list[StoredCell]) -> list[Table]:
        rows = [row for stored in cells if stored.result.ok
                for row in summary_rows(stored, ModelSpec.model_validate(stored.result.artifacts["spec"]))]
        if not rows:
            return []
        return [Table("table", f"{suite.title} ({suite.mirrors}): gradient ascent climbs", pd.DataFrame(rows),
                      TABLE_NOTE.format(o=self.options(suite)))]

    def figures(self, suite: "Suite", cells: list[StoredCell], out_dir: Path) -> list[Path]:
        options = self.options(suite)
        written: list[Path] = []
        for stored in cells:
            if not stored.result.ok:
                continue
            spec = ModelSpec.model_validate(stored.result.artifacts["spec"])
            path = out_dir / stored.result.artifacts["inspection"]
            with np.load(path) as loaded:
                arrays = dict(loaded)
            label = f"{spec.name} ({stored.cell.backend}, {stored.record['device']})"
            written += draw(arrays, spec, options, label, path.parent)
        return written


TABLE_NOTE = ("Objective: mean activation of the visualised filter (from noise, {o.ascent_steps} steps of "
              "{o.ascent_step_size}), mean squared activation of the layer (deep dream, {o.dream_steps} steps of "
              "{o.dream_step_size}); averaged over filters or digits. Every ascent should end above its start.")


def summary_rows(stored: StoredCell, spec: ModelSpec) -> list[dict[str, Any]]:
    """One table row per conv layer of a finished cell."""
    record = stored.record
    rows = []
    for number, index in enumerate(conv_layers(spec), start=1):
        rows.append({
            "Backend": stored.cell.backend, "Device": record["device"], "Model": f"{spec.name} ({record['source']})",
            "Test acc %": record["test_accuracy"], "Layer": f"conv {number}: {spec.layers[index].describe()}",
            "Filters shown": record[f"conv{number}_filters_shown"],
            "Silent at start": record[f"conv{number}_silent_filters"],
            "Filter ascent start": record[f"conv{number}_ascent_start"],
            "Filter ascent end": record[f"conv{number}_ascent_end"],
            "Dream start": record[f"conv{number}_dream_start"], "Dream end": record[f"conv{number}_dream_end"],
        })
    return rows


def draw(arrays: dict[str, np.ndarray], spec: ModelSpec, options: VisualizeOptions, label: str,
         folder: Path) -> list[Path]:
    """Every figure of one cell from its arrays, into its folder; ``label`` names model, backend, device."""
    written = []
    layers = conv_layers(spec)
    for number, index in enumerate(layers, start=1):
        layer: Conv2D = spec.layers[index]  # type: ignore[assignment]
        shape = spec.shapes()[index + 1]
        name = (f"Conv layer {number} ({layer.filters} filters {layer.kernel}x{layer.kernel}, stride {layer.stride}, "
                f"output {shape[0]}x{shape[1]})")
        written += draw_kernels(arrays[f"kernel_{number}"], name, options, label, folder / f"weights_conv{number}")
        tiles = grids.standardise(arrays[f"ascent_{number}"][..., 0])
        silent = arrays[f"ascent_objective_{number}"][0] <= 0
        written.append(grids.grid_figure(
            grids.Grid.of_filters(tiles), path=folder / f"filters_conv{number}.png", flagged=silent, flag="silent",
            title=f"{name}: input that maximises each filter's mean activation\n{label}; gradient ascent from "
                  f"noise, {options.ascent_steps} steps of {options.ascent_step_size:g} (L2-normalised)"
                  + (f"\nframed: {silent.sum()} filters silent on all {options.noise_draws} noise starts "
                     "(no gradient, left as drawn)"
                     if silent.any() else "")))
        maps = arrays[f"maps_{number}"]
        for position, digit in enumerate(arrays["digits"]):
            written.append(grids.grid_figure(
                grids.Grid.of_filters(maps[position].transpose(2, 0, 1)), cmap="viridis", value_label="activation",
                vmin=0.0 if maps.min() >= 0 else None, vmax=float(maps[position].max()) or 1.0,
                inset=arrays["digit_images"][position, ..., 0], inset_title=f'test image "{digit}"',
                path=folder / f"feature_maps_{digit}_conv{number}.png",
                title=f'{name}: feature maps for the test digit "{digit}"\n{label}; one colour scale per figure'))
    dreams = [grids.stretch(arrays[f"dream_{number}"][..., 0]) for number in range(1, len(layers) + 1)]
    table = np.stack([arrays["digit_images"][..., 0], *dreams], axis=1)
    written.append(grids.image_table(
        table, [f'"{digit}"' for digit in arrays["digits"]],
        ["input"] + [f"conv {n} ({spec.layers[i].filters} filters)" for n, i in enumerate(layers, start=1)],
        path=folder / "deep_dream.png",
        title=f"Deep dream per conv layer: {options.dream_steps} steps of {options.dream_step_size:g} "
              f"(L2-normalised) on the layer's mean squared activation\n{label}"))
    return written


def draw_kernels(kernel: np.ndarray, name: str, options: VisualizeOptions, label: str, stem: Path) -> list[Path]:
    """Fig. 5.2: each filter's first input channel on one symmetric scale (dark negative, light
    positive), and with ``weight_channels="all"`` every channel of every filter."""
    limit = float(np.abs(kernel).max()) or 1.0
    channels = kernel.shape[2]
    which = "all filters" if channels == 1 else f"input channel 0 of each filter (of {channels})"
    written = [grids.grid_figure(
        grids.Grid.of_filters(kernel[:, :, 0, :].transpose(2, 0, 1)), value_label="weight", vmin=-limit, vmax=limit,
        path=stem.with_suffix(".png"), title=f"{name}: learned weights, {which}\n{label}")]
    if options.weight_channels == "all" and channels > 1:
        every = kernel.transpose(3, 2, 0, 1)  # (filters, channels, kh, kw)
        grid = grids.Grid(every, [str(f) for f in range(every.shape[0])], [str(c) for c in range(channels)],
                          "filter", "input channel")
        written.append(grids.grid_figure(grid, value_label="weight", vmin=-limit, vmax=limit,
                                         path=stem.with_name(f"{stem.name}_all_channels.png"),
                                         title=f"{name}: learned weights, every input channel\n{label}"))
    return written


TASK = VisualizeTask()
