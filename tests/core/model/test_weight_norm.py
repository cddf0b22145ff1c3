"""fold_weight_norm / unfold_weight_norm against PyTorch's own weight-norm parametrization."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.nn.utils.parametrizations import weight_norm  # noqa: E402

from xtts_core.model.weight_norm import fold_weight_norm, unfold_weight_norm  # noqa: E402

G_KEY = "parametrizations.weight.original0"
V_KEY = "parametrizations.weight.original1"


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _normed_pair() -> nn.Module:
    """A Conv1d and a ConvTranspose1d under weight norm, with g moved away from ||v||."""
    torch.manual_seed(0)
    model = nn.Sequential(
        weight_norm(nn.Conv1d(6, 5, 3, padding=1)),
        weight_norm(nn.ConvTranspose1d(5, 4, 16, 8, padding=4)),
    )
    with torch.no_grad():
        for m in model:
            g = m.parametrizations.weight.original0
            g.mul_(torch.rand_like(g) + 0.5)
    return model


def test_g_shapes_are_dim0_for_conv_and_conv_transpose() -> None:
    sd = _normed_pair().state_dict()
    assert sd[f"0.{G_KEY}"].shape == (5, 1, 1)  # Conv1d: (C_out, 1, 1)
    assert sd[f"1.{G_KEY}"].shape == (5, 1, 1)  # ConvTranspose1d: (C_in, 1, 1), norm over dim 0


def test_fold_matches_parametrization() -> None:
    model = _normed_pair()
    folded = fold_weight_norm(model.state_dict())
    assert set(folded) == {"0.weight", "0.bias", "1.weight", "1.bias"}
    for i in range(2):
        assert _rel_err(folded[f"{i}.weight"], model[i].weight.detach()) <= 1e-6


def test_fold_legacy_naming() -> None:
    model = _normed_pair()
    legacy = {
        k.replace(G_KEY, "weight_g").replace(V_KEY, "weight_v"): v
        for k, v in model.state_dict().items()
    }
    folded = fold_weight_norm(legacy)
    for i in range(2):
        assert _rel_err(folded[f"{i}.weight"], model[i].weight.detach()) <= 1e-6


def test_fold_passes_other_keys_through_in_order() -> None:
    bias = torch.randn(3)
    sd = {
        "a.bias": bias,
        "a.weight_g": torch.ones(3, 1, 1),
        "a.weight_v": torch.randn(3, 2, 4),
        "z": torch.zeros(1),
    }
    folded = fold_weight_norm(sd)
    assert list(folded) == ["a.bias", "a.weight", "z"]
    assert folded["a.bias"] is bias
    norms = folded["a.weight"].flatten(1).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(3))


@pytest.mark.parametrize("naming", ["parametrizations", "legacy"])
def test_unfold_round_trip_and_strict_load(naming: str) -> None:
    torch.manual_seed(1)
    plain = nn.Sequential(nn.Conv1d(6, 5, 3, padding=1), nn.ConvTranspose1d(5, 4, 16, 8, padding=4))
    sd = plain.state_dict()
    unfolded = unfold_weight_norm(sd, ["0.weight", "1.weight"], naming=naming)
    assert "0.weight" not in unfolded
    assert unfolded["1.weight_g" if naming == "legacy" else f"1.{G_KEY}"].shape == (5, 1, 1)

    # PyTorch's weight_norm module loads both namings (legacy through its compat hook).
    normed = nn.Sequential(
        weight_norm(nn.Conv1d(6, 5, 3, padding=1)),
        weight_norm(nn.ConvTranspose1d(5, 4, 16, 8, padding=4)),
    )
    normed.load_state_dict(unfolded, strict=True)
    x = torch.randn(2, 6, 9)
    torch.testing.assert_close(normed(x), plain(x), rtol=1e-5, atol=1e-6)

    refolded = fold_weight_norm(unfolded)
    assert list(refolded) == list(sd)
    for key in sd:
        assert _rel_err(refolded[key], sd[key]) <= 1e-6
    plain.load_state_dict(refolded, strict=True)


def test_errors() -> None:
    with pytest.raises(KeyError, match="incomplete"):
        fold_weight_norm({"a.weight_g": torch.ones(2, 1, 1)})
    with pytest.raises(KeyError, match="exists"):
        fold_weight_norm(
            {
                "a.weight": torch.ones(2, 1, 1),
                "a.weight_g": torch.ones(2, 1, 1),
                "a.weight_v": torch.ones(2, 1, 1),
            }
        )
    with pytest.raises(ValueError, match="does not fit"):
        fold_weight_norm({"a.weight_g": torch.ones(3, 1, 1), "a.weight_v": torch.ones(2, 1, 1)})
    with pytest.raises(KeyError, match="not plain weights"):
        unfold_weight_norm({"a.weight": torch.ones(2, 1, 1)}, ["b.weight"])
    with pytest.raises(ValueError, match="naming"):
        unfold_weight_norm({}, [], naming="other")  # type: ignore[arg-type]
