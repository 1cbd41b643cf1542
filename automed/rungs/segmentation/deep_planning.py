"""The probe a deep segmentation rung plans with (:meth:`~automed.rungs.segmentation.deep.DeepSegmentationRung.plan`): timed
training steps and training memory of a configuration on a few cases, the precision chosen, and the GPU memory
a plan must respect."""

from __future__ import annotations

import time
from typing import Any

from automed.rungs.base import FitContext

__all__ = ["PROBE_OVERHEAD_S", "Prober"]

PROBE_OVERHEAD_S = 5.0  # one probe (model build, a few steps) per trial and per final training
#: ``cpu_bfloat16: auto`` keeps bfloat16 autocast where a training step is this many times as fast.
BF16_MIN_SPEEDUP = 1.15


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
