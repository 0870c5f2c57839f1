"""The v2 encoder's internals (lgi_train.compress.encoder, kept as the baseline of `--encoder v2`): the warm
second pass and the count search. Here, in the package that owns them, since they use its private
helpers; the encoder's behaviour through the command line is tested in packages/lgi/tests/test_codec.py."""

from __future__ import annotations

import torch

from lgi_train.compress.codec import CodecSettings
from lgi_train.compress.encoder import EncodeOptions


def test_the_warm_second_pass_starts_from_the_first_and_adds_the_next_fitted():
    from lgi_dictco.gauss.torch_quant import features_to_shape
    from lgi_train.compress.codec import QuantizedSet
    from lgi_train.compress.encoder import _grown, _pruned
    from lgi_train.model import GaussianModel

    g = torch.Generator().manual_seed(3)
    n = 40
    fitted = GaussianModel(torch.rand(n, 2, generator=g), 0.02 + 0.05 * torch.rand(n, 2, generator=g),
                           3 * torch.rand(n, generator=g), torch.rand(n, 3, generator=g), render_mode="topk")
    order = torch.randperm(n, generator=g)
    qset = QuantizedSet(_pruned(fitted, order, 25), 32, 48, CodecSettings())
    with torch.no_grad():
        qset.xy += 0.01  # as fine-tuning would have moved them
    grown = _grown(qset, fitted, order, 25, 31)
    assert grown.num_gaussians == 31
    first = torch.zeros(n, dtype=torch.bool)
    first[order[:25]] = True
    kept = torch.zeros(n, dtype=torch.bool)
    kept[order[:31]] = True
    from_first = first[kept]  # rows of the grown set, in the fit's index order, that pass one coded
    with torch.no_grad():
        scales, rot = features_to_shape(qset.shape.values())
        assert torch.equal(grown.xy[from_first], qset.positions())
        assert torch.allclose(grown.color[from_first], qset.rgb_colors())
        assert torch.allclose(torch.exp(grown.log_scale[from_first]), scales, rtol=1e-5)
        assert torch.equal(grown.xy[~from_first], fitted.xy[kept & ~first])
        assert torch.equal(grown.color[~from_first], fitted.color[kept & ~first])



def test_rate_control_refines_steps_when_every_gaussian_fits():
    """With all fitted Gaussians well under the goal, the search spends the rest on finer steps."""
    from lgi_train.compress.encoder import _probe_size, _search_count
    from lgi_train.compress.sensitivity import calc_sensitivity
    from lgi_train.fit import Fitter

    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 64), indexing="ij")
    target = torch.stack([xx, yy, (xx - yy).abs()]).contiguous()
    opts = EncodeOptions(codec=CodecSettings(finetune_steps=15), fit_steps=30, refit_steps=5)
    model = Fitter(target, opts.fit.replace(num_gaussians=40, steps=20)).run().model
    model.quant = None
    sens = calc_sensitivity(model, 48, 64)
    order = torch.argsort(sens.importance, descending=True)
    full = _probe_size(model, sens, order, 40, 48, 64, opts)
    goal = int(full * 1.3)
    n, refined, probed, all_kept = _search_count(model, sens, order, 48, 64, opts, goal, lambda *a: None)
    assert n == 40 and all_kept
    assert refined.codec.color_step < opts.codec.color_step
    size = _probe_size(model, sens, order, 40, 48, 64, refined)
    assert full < size <= goal
    assert probed == size  # the search reports the size of what it chose
    # Under the size of all of them, it prunes, and again reports the probed size of the count it chose.
    # (A goal between the sizes of the fewest Gaussians the encoder keeps and of all 40.)
    from lgi_train.compress.encoder import MIN_GAUSSIANS

    smallest = _probe_size(model, sens, order, MIN_GAUSSIANS, 48, 64, opts)
    goal = (smallest + full) // 2
    assert smallest < goal < full
    n, same, probed, all_kept = _search_count(model, sens, order, 48, 64, opts, goal, lambda *a: None)
    assert MIN_GAUSSIANS <= n < 40 and not all_kept and same is opts
    assert probed == _probe_size(model, sens, order, n, 48, 64, opts) <= goal
    assert _probe_size(model, sens, order, n + 1, 48, 64, opts) > goal  # the largest count that fits
