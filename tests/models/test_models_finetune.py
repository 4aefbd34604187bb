"""Fine-tuning: a frozen encoder's BatchNorm statistics do not move under ``fit``, per-part
learning rates, and the normalisation of the training data travelling with the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from catseg.checkpoint import load_checkpoint
from catseg.data.transforms import Compose, Normalize, RandomHorizontalFlip
from catseg.errors import ConfigError
from catseg.export import to_onnx
from catseg.losses import DiceLoss
from catseg.models import (
    IMAGENET,
    Preprocessing,
    UNet,
    freeze_encoder,
    param_groups,
    unfreeze_encoder,
)
from catseg.predict import Segmenter
from catseg.training import RunOptions, fit
from catseg.training._data import read_data_facts


class Blobs(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Bright squares on dark noise in [0, 1], then the dataset's own transforms."""

    class_names = ("_background_", "blob")

    def __init__(self, n: int = 8, size: int = 32, transforms: object = None) -> None:
        generator = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, size, size, generator=generator) * 0.3
        self.masks = torch.zeros(n, size, size, dtype=torch.int64)
        for i in range(n):
            y, x = (int(v) for v in torch.randint(0, size // 2, (2,), generator=generator))
            self.images[i, :, y : y + size // 3, x : x + size // 3] += 0.6
            self.masks[i, y : y + size // 3, x : x + size // 3] = 1
        self.transforms = transforms

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.images[i].clone(), self.masks[i].clone()
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)  # type: ignore[operator]
        return image, mask


def _fit(model: UNet, data: Dataset, checkpoint_dir: Path | None = None) -> None:
    fit(
        model,
        DataLoader(data, batch_size=4, shuffle=True),
        loss_fn=DiceLoss(),
        epochs=1,
        run=RunOptions(precision="fp32", device="cpu", seed=0),
        checkpoint_dir=checkpoint_dir,
        progress=False,
    )


def _bn_buffers(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        k: v.clone() for k, v in module.state_dict().items() if "running" in k or "batches" in k
    }


def test_frozen_encoder_batchnorm_statistics_do_not_move_under_fit() -> None:
    torch.manual_seed(0)
    model = UNet(3, 1, encoder="resnet18")
    freeze_encoder(model)
    before = _bn_buffers(model.encoder)
    weights = {k: v.clone() for k, v in model.encoder.named_parameters()}
    head = model.head.weight.clone()
    _fit(model, Blobs())
    after = _bn_buffers(model.encoder)
    assert before.keys() == after.keys()
    assert len(before) > 0
    for key in before:
        assert torch.equal(before[key], after[key]), key  # bit-exact
    for key, value in model.encoder.named_parameters():
        assert torch.equal(value, weights[key]), key
    assert not torch.equal(model.head.weight, head)  # the decoder did train
    assert model.train().encoder.training is False

    # the same fit with the encoder unfrozen moves them (the check above is not vacuous)
    unfreeze_encoder(model)
    _fit(model, Blobs())
    moved = _bn_buffers(model.encoder)
    assert not torch.equal(moved["bn1.running_mean"], after["bn1.running_mean"])


def test_param_groups_give_each_part_its_learning_rate() -> None:
    model = UNet(3, 1, encoder="resnet18")
    groups = param_groups(model, encoder_lr=1e-4, decoder_lr=1e-2)
    optimizer = torch.optim.AdamW(groups, lr=0.5)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-4, 1e-2]
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    assert {id(p) for p in optimizer.param_groups[0]["params"]} == encoder_ids
    rest = {id(p) for p in optimizer.param_groups[1]["params"]}
    assert rest == {id(p) for p in model.parameters()} - encoder_ids
    # one step: each part moves by its own lr (Adam's first step is lr * sign(grad))
    before_enc = model.encoder.conv1.weight.detach().clone()
    before_head = model.head.bias.detach().clone()
    model(torch.rand(2, 3, 32, 32)).sum().backward()
    optimizer.step()
    enc_step = (model.encoder.conv1.weight.detach() - before_enc).abs().max().item()
    head_step = (model.head.bias.detach() - before_head).abs().max().item()
    assert enc_step == pytest.approx(1e-4, rel=0.05)
    assert head_step == pytest.approx(1e-2, rel=0.05)
    with pytest.raises(ConfigError, match=r"encoder_lr must be a finite number in \(0.0"):
        param_groups(model, encoder_lr=-1.0)
    with pytest.raises(ConfigError, match=r"param_groups expects a catseg UNet"):
        param_groups(torch.nn.Linear(1, 1))


def test_fit_records_the_datasets_normalize_and_segmenter_reproduces_it(tmp_path: Path) -> None:
    """The old silent case: ``fit`` on a dataset with ``Normalize`` saved mean 0 / std 1 and
    ``Segmenter.from_checkpoint`` fed un-normalised pixels. Now the file records the
    dataset's normalisation and the Segmenter's probabilities equal the model's."""
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    data = Blobs(transforms=Compose([RandomHorizontalFlip(0.5), Normalize(mean, std)]))
    assert read_data_facts(data).normalization == Preprocessing(tuple(mean), tuple(std))
    torch.manual_seed(0)
    model = UNet(3, 1, init_features=4, depth=2)
    _fit(model, data, checkpoint_dir=tmp_path)
    assert model.preprocessing == Preprocessing(tuple(mean), tuple(std))
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt.config.preprocessing == Preprocessing(tuple(mean), tuple(std))

    image = Blobs(n=1, size=45).images[0]  # raw [0, 1] pixels, not a multiple of the stride
    normalised = (image - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    model.eval()
    with torch.no_grad():
        expected = torch.sigmoid(model(normalised.unsqueeze(0)))[0, 0]
    seg = Segmenter.from_checkpoint(
        tmp_path / "last.pt", image_size=None, precision="fp32", device="cpu", fuse=False
    )
    got = seg.predict(image, return_probabilities=True).probabilities
    assert got is not None
    assert (got[1] - expected).abs().max().item() <= 1e-4
    # the in-memory Segmenter reads the same record
    direct = Segmenter(
        model,
        fuse=False,
        classes=["bg", "blob"],
        precision="fp32",
        device="cpu",
    )
    assert direct.mean == tuple(mean)


def test_normalisation_conflicts_are_errors_naming_both() -> None:
    model = UNet(3, 1, init_features=4, depth=2)
    model.describe(mean=IMAGENET.mean, std=IMAGENET.std)  # e.g. recorded by encoder_weights
    with pytest.raises(
        ConfigError,
        match=r"the training data's normalisation \(mean=\[0.0, 0.0, 0.0\], std=\[1.0, 1.0, "
        r"1.0\]\) differs from the preprocessing recorded in the model.s config \(mean=\[0.485",
    ):
        _fit(model, Blobs())


def test_to_onnx_of_a_bare_unet_stores_its_preprocessing(tmp_path: Path) -> None:
    model = UNet(3, 1, init_features=4, depth=2).eval()
    model.describe(mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    path = to_onnx(model, tmp_path / "m.onnx")
    seg = Segmenter.from_onnx(path, classes=["bg", "fg"])
    assert seg.mean == (0.1, 0.2, 0.3)
    assert seg.std == (0.5, 0.5, 0.5)
