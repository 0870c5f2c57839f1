"""The restoration network (lgi_dictco.restore): tiles equal the whole image, memory follows the tile, runs
repeat bit for bit, training lowers the loss, and the shipped weights load only when intact."""

from __future__ import annotations

import pytest
import torch

from lgi_dictco import restore as shipped
from lgi_dictco.restore.model import RestoreConfig, RestoreNet, jpeg_quality, level_of, restore
from lgi_dictco.restore.train import TrainConfig, held_out_gain, train


def busy_net(seed: int = 0, blocks: int = 2, conditioned: bool = False) -> RestoreNet:
    """A network whose every layer does something (a fresh one is the identity: its last layer is zero)."""
    torch.manual_seed(seed)
    net = RestoreNet(RestoreConfig(width=8, blocks=blocks, conditioned=conditioned))
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return net.eval()


def image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(3, h, w, generator=g)


def test_a_fresh_network_is_the_identity():
    x = image(20, 30)
    assert torch.equal(restore(RestoreNet(RestoreConfig(width=8, blocks=1)).eval(), x), x)


@pytest.mark.parametrize("tile", [7, 16, 33, 1000])
def test_tiles_equal_the_whole_image(tile):
    net = busy_net()
    x = image(45, 70)
    with torch.no_grad():
        whole = net(x[None])[0].clamp(0, 1)
    tiled = restore(net, x, tile=tile)
    assert (tiled - whole).abs().max() < 1e-5
    assert net.radius == 2 + 2 * 2


def test_memory_follows_the_tile_not_the_image():
    net = busy_net()
    seen = []
    net.head.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
    restore(net, image(300, 200), tile=32)
    assert max(h * w for h, w in seen) <= (32 + 2 * net.radius) ** 2


def test_restoring_twice_gives_the_same_bits_and_reports_progress():
    net = busy_net(1)
    x = image(40, 50, 1)
    ticks = []
    a = restore(net, x, tile=16, progress=lambda d, t: ticks.append((d, t)))
    assert torch.equal(a, restore(net, x, tile=16))
    assert ticks[-1] == (12, 12) and len(ticks) == 12


def test_training_lowers_the_loss_on_a_learnable_degradation():
    ref = image(48, 48, 2)
    deg = (ref * 0.8 + 0.1)  # a contrast loss: one convolution learns it
    net, rec = train([(deg, ref)], RestoreConfig(width=8, blocks=1),
                     TrainConfig(patch=24, batch=4, lr=5e-3, steps=150, seed=0))
    assert rec["steps"] == 150 and rec["loss_last"] < 0.5 * rec["loss_first"]
    with pytest.raises(ValueError, match="unusable"):
        train([(deg[:, :10], ref[:, :10])], tc=TrainConfig(patch=24))


def test_a_conditioned_network_reads_its_level_and_tiles_equal_the_whole_image():
    net = busy_net(3, conditioned=True)
    x = image(45, 70, 3)
    with torch.no_grad():
        whole = net(x[None], level_of("lgi", 0.5))[0].clamp(0, 1)
        other = net(x[None], level_of("lgi", 2.0))[0].clamp(0, 1)
    assert (other - whole).abs().max() > 1e-3  # the level changes the output
    assert (restore(net, x, tile=16, level=level_of("lgi", 0.5)) - whole).abs().max() < 1e-5
    with pytest.raises(ValueError, match="give the input's level"):
        restore(net, x)
    with pytest.raises(ValueError, match="takes no level"):
        restore(busy_net(), x, level=0.0)


def test_levels_grow_with_quality_and_refuse_nonsense():
    assert level_of("lgi", 0.25) == -2.0 and level_of("lgi", 1.0) == 0.0
    assert level_of("jpeg", 10) < level_of("jpeg", 95)
    for source, value in (("lgi", 0.0), ("jpeg", 0), ("jpeg", 101), ("webp", 50)):
        with pytest.raises(ValueError):
            level_of(source, value)


def test_the_jpeg_quality_is_read_back_from_the_file_pillow_wrote():
    import io

    import numpy as np
    from PIL import Image

    im = Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8))
    for quality in (1, 5, 10, 23, 50, 51, 75, 90, 95, 100):
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=quality)
        with Image.open(buf) as jpg:
            assert jpeg_quality(jpg.quantization[0]) == quality
    with pytest.raises(ValueError, match="64 values"):
        jpeg_quality([16] * 10)


def test_a_conditioned_network_learns_a_degradation_that_follows_the_level():
    """Two levels, two contrast losses of different strength on one image: the conditioned network undoes each
    at its level; a network without the level learns one average correction, which harms the mild one."""
    ref = image(48, 48, 4)
    pairs = [(ref * 0.8 + 0.1, ref, 0.0), (ref * 0.95 + 0.025, ref, 1.0)]
    tc = TrainConfig(patch=24, batch=4, lr=5e-3, steps=300, seed=0)
    net, _ = train(pairs, RestoreConfig(width=8, blocks=1, conditioned=True), tc)
    assert min(held_out_gain(net, [p]) for p in pairs) > 1.0
    blind, _ = train([p[:2] for p in pairs], RestoreConfig(width=8, blocks=1), tc)
    assert held_out_gain(blind, [pairs[1][:2]]) < 0
    with pytest.raises(ValueError, match="needs a level"):
        train([(ref, ref)], RestoreConfig(width=8, blocks=1, conditioned=True), TrainConfig(patch=24, steps=1))


def test_held_out_pairs_keep_the_best_weights_and_never_worse_than_the_identity():
    """A held-out pair whose 'degradation' is the opposite of the training one: every step makes it worse,
    so the weights kept are those of step 0, the identity."""
    ref = image(48, 48, 5)
    train_pairs = [(ref * 0.8 + 0.1, ref)]
    opposite = [(ref, ref * 0.8 + 0.1)]
    net, rec = train(train_pairs, RestoreConfig(width=8, blocks=1),
                     TrainConfig(patch=24, batch=4, lr=5e-3, steps=60, seed=0, val_every=20), held_out=opposite)
    assert [s for s, _ in rec["val"]] == [0, 20, 40, 60]
    assert rec["kept_step"] == 0 and rec["kept_gain"] == 0.0
    assert torch.equal(restore(net, ref), ref)
    helpful, rec2 = train(train_pairs, RestoreConfig(width=8, blocks=1),
                          TrainConfig(patch=24, batch=4, lr=5e-3, steps=60, seed=0, val_every=20),
                          held_out=[(ref * 0.8 + 0.1, ref)])
    assert rec2["kept_step"] > 0 and rec2["kept_gain"] == max(g for _, g in rec2["val"]) > 0


def test_without_shipped_weights_loading_says_so():
    """None ship yet (docs/restore.md): asking for one is one clear error, as for an unknown source."""
    assert shipped.list_restorers() == []
    with pytest.raises(shipped.PretrainedError, match="ships no restoration model"):
        shipped.load_restorer("lgi")
    with pytest.raises(shipped.PretrainedError, match="sources: lgi, jpeg"):
        shipped.load_restorer("webp")
