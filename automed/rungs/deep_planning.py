"""Planning of the deep segmentation rungs: probe the default configuration, then shrink it to the
memory limit and the time allotted (batch, patch, width; trials and epochs), or skip with the reason.

The plan is saved in the rung's folder, so a resumed fit follows it unchanged.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from automed.rungs.base import FitContext, RungPlan
from automed.rungs.time_plan import minutes, split_time

__all__ = ["PROBE_OVERHEAD_S", "Prober", "SegmentationPlanning", "cuda_memory_limit"]

PROBE_OVERHEAD_S = 5.0  # one probe (model build, a few steps) per trial and per final training
#: ``cpu_bfloat16: auto`` keeps bfloat16 autocast where a training step is this many times as fast.
BF16_MIN_SPEEDUP = 1.15


class SegmentationPlanning:
    """The planning half of :class:`~automed.rungs.deep.DeepSegmentationRung` (a mixin: it uses the
    rung's ``params``, class settings, ``_config``, ``_default_space`` and ``_evaluations``)."""

    def plan(self, context: FitContext) -> RungPlan:
        """Probe the default configuration; shrink it to the memory limit and the allotment, or skip."""
        fp = context.fingerprint
        if not self.applies_to(fp):
            return RungPlan(None, note="not probed", skip_reason="a 3D network needs 3D images; this dataset is 2D.")
        probe = Prober(self, context)
        shrunk: list[str] = []
        skip = self._fit_memory(probe, context, shrunk)
        if skip is not None:
            return skip
        precision = probe.choose_precision()
        measured, val_s, epoch_s = probe.default()
        budget, p = context.budget_s, self.params
        n_trainings = len(self._evaluations(context)) * p.members  # final trainings
        n_eval_cases = sum(len(v) for _, _, v in self._evaluations(context))
        tta_factor = 2 ** (2 if self.network_dims == 2 else 3) if p.tta else 1
        reserve_s = 10.0 + n_eval_cases * val_s * tta_factor * p.members * 1.5
        usable = None if budget is None else budget - reserve_s - PROBE_OVERHEAD_S * n_trainings
        while usable is not None and usable < p.min_epochs * epoch_s * n_trainings and len(probe.settings["widths"]) and \
                probe.settings["widths"][0] > 8:
            old = probe.settings["widths"][0]
            probe.settings["widths"] = [old // 2]
            shrunk.append(f"width {old} -> {old // 2} to fit {p.min_epochs} epochs in {minutes(budget)}")
            measured, val_s, epoch_s = probe.default()
        settings = probe.settings
        settings.update(epoch_seconds=epoch_s, validation_seconds_per_case=val_s, device=str(probe.device),
                        seconds_per_step=measured.seconds_per_step)
        note = (f"probe on {probe.device}: {measured.seconds_per_step:.3f} s per step of "
                f"{self._default_space(settings)['batch_size']} samples, {val_s:.2f} s per validation image, "
                f"{epoch_s:.1f} s per epoch" + (f"; {precision}" if precision else ""))
        if usable is None:  # no time limit: fixed epochs, as many as max_epochs allows
            n_trials = p.n_trials if p.n_trials >= 2 else 0
            settings.update(trial_epochs=max(p.max_epochs // 3, p.min_epochs), final_epochs=p.max_epochs)
            trial_s = settings["trial_epochs"] * epoch_s + PROBE_OVERHEAD_S
            final_s = p.max_epochs * epoch_s + PROBE_OVERHEAD_S
        else:
            minimum = p.min_epochs * epoch_s * n_trainings
            if usable < minimum:
                need = budget - usable + minimum
                return RungPlan(need, measured.train_memory_bytes, note, shrunk,
                                skip_reason=f"estimated {minutes(need)} for the shortest training "
                                            f"({p.min_epochs} epochs) > the {minutes(budget)} allotted.")
            n_trials, trial_s, final_s = split_time(usable, epoch_s, p, PROBE_OVERHEAD_S, shrunk, n_trainings)
        settings.update(n_trials=n_trials, trial_seconds=trial_s, final_seconds=final_s)
        seconds = reserve_s + n_trials * trial_s + n_trainings * final_s
        plan = RungPlan(seconds, measured.train_memory_bytes, note, shrunk, None, settings)
        return plan

    def _fit_memory(self, probe: Prober, context: FitContext, shrunk: list[str]) -> RungPlan | None:
        """Shrink the largest searchable configuration until its training fits the memory limit."""
        limit = context.max_vram_bytes or cuda_memory_limit(probe.device)
        if limit is None:
            return None
        settings = probe.settings
        largest = {**self._default_space(settings), "width": settings["widths"][-1],
                   "batch_size": settings["batch_sizes"][-1], **self._architecture.largest(self.params)}
        while (need := probe.memory_needed(largest)) is None or need > limit:
            change = self._shrink_for_memory(settings, largest)
            if change is None:
                return RungPlan(None, need, shrunk=shrunk, skip_reason=(
                    "the smallest configuration ran out of GPU memory in a probe training step." if need is None else
                    f"the smallest configuration needs an estimated {need / 2**30:.1f} GiB to train, more than the "
                    f"{limit / 2**30:.1f} GiB limit."))
            why = ("out of GPU memory in a probe step" if need is None else
                   f"estimated {need / 2**30:.1f} GiB > {limit / 2**30:.1f} GiB limit")
            shrunk.append(f"{change} ({why})")
        return None

    def _shrink_for_memory(self, settings: dict[str, Any], largest: dict[str, Any]) -> str | None:
        """Reduce the largest configuration one step: batch, then patch (3D), then width."""
        batches, widths = settings["batch_sizes"], settings["widths"]
        if len(batches) > 1 or batches[0] > 1:
            old = batches[-1]
            settings["batch_sizes"] = batches[:-1] if len(batches) > 1 else [max(1, old // 2)]
            largest["batch_size"] = settings["batch_sizes"][-1]
            return f"batch {old} -> {largest['batch_size']}"
        patch = settings["patch"]
        if self.network_dims == 3 and max(patch) > 32:
            new = [max(16, int(s * 0.75) // 16 * 16) for s in patch]  # multiples of 16 stay as the message says
            settings["patch"] = new
            return f"patch {patch} -> {new}"
        if len(widths) > 1 or widths[0] > 8:
            old = widths[-1]
            settings["widths"] = widths[:-1] if len(widths) > 1 else [old // 2]
            largest["width"] = settings["widths"][-1]
            return f"width {old} -> {largest['width']}"
        return None

    def _default_batch_sizes(self, patch: list[int]) -> list[int]:
        """The power of two nearest ``batch_voxels / patch voxels`` (2 to 32), and half of it."""
        largest = int(np.clip(2 ** round(math.log2(self.batch_voxels / np.prod(patch))), 2, 32))
        return [largest // 2, largest]

    def _axis(self, fingerprint: Any) -> int | None:
        from automed.deep.volumes import slice_axis

        return slice_axis(fingerprint) if self.network_dims == 2 and fingerprint.dims == 3 else None

    def _patch(self, fingerprint: Any, axis: int | None) -> list[int]:
        """Median image size (the slice plane for 2D on 3D), capped, as nnU-Net plans its patch.

        Larger images are cropped in training and tiled in inference. Each configuration rounds
        the patch up to its network's size divisor (see ``_config``), so a shallower network
        trains on a tighter patch.
        """
        shapes = np.asarray([r["shape"] for r in fingerprint.cases])
        if axis is not None:
            shapes = np.delete(shapes, axis, axis=1)
        cap = self.params.max_patch or self.default_max_patch
        return [int(min(cap, math.ceil(s))) for s in np.median(shapes, axis=0)]


class Prober:
    """Probe configurations of a rung on a few training cases of fold 0's inner split."""

    def __init__(self, rung: Any, context: FitContext) -> None:
        from automed.deep.inference import pick_device
        from automed.deep.volumes import SampleSource, load_volumes

        self.rung, self.context = rung, context
        fp, p = context.fingerprint, rung.params
        axis = rung._axis(fp)
        patch = rung._patch(fp, axis)
        self.settings = {"axis": axis, "patch": patch, "widths": sorted(p.widths),
                         "batch_sizes": sorted(p.batch_sizes or rung._default_batch_sizes(patch))}
        _, train_ids, _ = rung._evaluations(context)[0]
        inner_train, self.inner_val = rung._inner(train_ids, context)
        self.volumes = load_volumes(context.dataset, fp, inner_train[:8] + self.inner_val[:1], context.volume_cache)
        self.source = SampleSource({k: v for k, v in self.volumes.items() if k in inner_train}, axis)
        self.device = pick_device()

    def measure(self, space: dict[str, Any]) -> Any:
        from automed.deep.probe import probe

        fp = self.context.fingerprint
        return probe(self.rung._config(space, self.settings), self.source, fp.n_channels, fp.n_classes, self.device,
                     self.context.include_background, seed=self.context.random_state)

    def memory_needed(self, space: dict[str, Any]) -> int | None:
        """Estimated training memory of ``space``; None when its probe ran out of GPU memory."""
        from automed.deep.probe import memory_or_none

        return memory_or_none(lambda: self.measure(space).train_memory_bytes)

    def choose_precision(self) -> str | None:
        """Under ``cpu_bfloat16: auto`` on a CPU, time the default configuration's step in fp32 and
        under bfloat16 autocast and keep the faster (bfloat16 only ``BF16_MIN_SPEEDUP`` times as
        fast); how it chose, or None where there was nothing to choose."""
        from automed.deep.throughput import bfloat16_is_fast

        choice = self.rung.params.cpu_bfloat16
        self.settings["cpu_bfloat16"] = choice is True
        if choice != "auto" or self.device.type != "cpu":
            return None
        if not bfloat16_is_fast(self.device):
            return ("cpu_bfloat16 auto: bfloat16 convolutions are slower than fp32 on this CPU (no bfloat16 "
                    "instructions), so fp32")
        space = self.rung._default_space(self.settings)
        fp32 = self.measure(space).seconds_per_step
        self.settings["cpu_bfloat16"] = True
        bf16 = self.measure(space).seconds_per_step
        self.settings["cpu_bfloat16"] = bool(bf16 * BF16_MIN_SPEEDUP <= fp32)
        return (f"cpu_bfloat16 auto: {fp32:.3f} s per step in fp32, {bf16:.3f} s under bfloat16 autocast, "
                f"so {'bfloat16' if self.settings['cpu_bfloat16'] else 'fp32'}")

    def default(self) -> tuple[Any, float, float]:
        """Probe of the default configuration, seconds per validation image and per epoch."""
        from automed.deep.inference import predict_proba
        from automed.nets import build_network

        space = self.rung._default_space(self.settings)
        measured = self.measure(space)
        config = self.rung._config(space, self.settings)
        started = time.perf_counter()
        fp = self.context.fingerprint
        predict_proba(build_network(config, fp.n_channels, fp.n_classes).to(self.device),
                      self.volumes[self.inner_val[0]].image, config.patch, self.settings["axis"], self.device,
                      bfloat16=config.cpu_bfloat16)
        val_s = time.perf_counter() - started
        epoch_s = self.rung.params.iterations * measured.seconds_per_step + len(self.inner_val) * val_s
        return measured, val_s, epoch_s


def cuda_memory_limit(device: Any) -> int | None:
    """90% of the memory this process may take on the GPU (its share under
    ``torch.cuda.set_per_process_memory_fraction``, all of it by default); no limit on CPU."""
    import torch

    if device.type != "cuda":
        return None
    # torch.cuda.get_per_process_memory_fraction is recent: without it, the default share (all of it)
    share = getattr(torch.cuda, "get_per_process_memory_fraction", lambda _: 1.0)(device)
    return int(torch.cuda.get_device_properties(device).total_memory * share * 0.9)
