"""Where the model looks: a signed heat map over a crop of how much each place pushes the model's fake-vs-real
logit margin (red: towards fake, blue: towards real), in the margin's own units per pixel.

What each model type gets (``method``):
- the kit's linear probe (``lib.linear_probe``, ``model_type: kit_probe``): its weights mapped back onto the stage
  feature maps. A stage's channel mean is a spatial average and its standard deviation the square root of one, so
  ``w·mean`` splits exactly into ``w·a(x, y) / HW`` and ``w·std`` into ``w·(a(x, y) - mean)² / (HW·std)``; the
  pooled head features split like the means. The maps of every stage (and the head) add up to the margin minus the
  bias: an exact decomposition, no gradient.
- any other classifier with a spatial feature map — EfficientNet-Lite models fine-tuned, LoRA-adapted (adapters
  merged) or with a trained head, the demo detector (all timm models in transformers' TimmWrapper), a ResNet student:
  Grad-CAM on the last 4-D feature map, left signed (no ReLU) so evidence for real shows too. Where the head is
  linear on the average-pooled map (EfficientNet-Lite: pool, dropout, linear) Grad-CAM is exactly that map's share
  of the margin (CAM).
- a model without a spatial feature map (a ViT): none; ``Unavailable`` says why.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..models import LoadedModel, normalized


class Unavailable(RuntimeError):
    """No heat map can be drawn for this model; the message says why."""


@dataclass
class Maps:
    """Heat maps of a batch of crops at crop resolution (margin per pixel) and how they were made."""

    maps: np.ndarray  # (N, S, S) float
    method: str  # "linear probe decomposition" | "Grad-CAM"
    layer: str  # where: the stages, or the feature map's module name
    margin: np.ndarray  # (N,) the model's fake-vs-real logit margin of each crop


def margin(logits: torch.Tensor, fake: list[int]) -> torch.Tensor:
    """Log-odds of fake against real from the logits: logsumexp of the fake classes minus that of the others."""
    real = [i for i in range(logits.shape[1]) if i not in fake]
    return torch.logsumexp(logits[:, fake], dim=1) - torch.logsumexp(logits[:, real], dim=1)


def _density(cells: torch.Tensor, size: int) -> torch.Tensor:
    """Per-cell shares (N, h, w) spread over the crop's pixels (N, S, S): each sums to the same total."""
    h, w = cells.shape[-2:]
    up = F.interpolate(cells[:, None].float() * (h * w), size=(size, size), mode="bilinear", align_corners=False)
    return up[:, 0] / (size * size)


def last_feature_map(module: torch.nn.Module, x: torch.Tensor) -> tuple[str, torch.nn.Module]:
    """The module that last produces a 4-D map with more than one position in a forward pass of ``x``; a map made
    in the first half of the pass (a transformer's patch embedding) is no place for a heat map: ``Unavailable``."""
    done: list[tuple[str, torch.nn.Module, bool]] = []

    def hook(name: str, m: torch.nn.Module):
        def record(_m: Any, _inp: Any, out: Any) -> None:
            done.append((name, m, isinstance(out, torch.Tensor) and out.dim() == 4 and out.shape[2] * out.shape[3] > 1))
        return record

    handles = [m.register_forward_hook(hook(n, m)) for n, m in module.named_modules() if n]
    try:
        with torch.no_grad():
            module(pixel_values=x[:1])
    finally:
        for h in handles:
            h.remove()
    spatial = [i for i, (_, _, is_map) in enumerate(done) if is_map]
    if not spatial or spatial[-1] < len(done) / 2:
        raise Unavailable(f"{type(module).__name__} has no spatial feature map (4-D) near its output to weight")
    name, layer, _ = done[spatial[-1]]
    return name, layer


def grad_cam_cells(module: torch.nn.Module, x: torch.Tensor, fake: list[int], layer: torch.nn.Module
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed Grad-CAM at ``layer``: Σ_c mean(∂margin/∂A_c) · A_c per position (N, h, w), and the margins."""
    seen: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda _m, _i, out: seen.__setitem__("a", out))
    try:
        with torch.enable_grad():
            x = x.detach().clone().requires_grad_(True)
            m = margin(module(pixel_values=x).logits.float(), fake)
            (grad,) = torch.autograd.grad(m.sum(), seen["a"])
    finally:
        handle.remove()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    return (weights * seen["a"]).sum(dim=1).detach(), m.detach()


def probe_cells(model: Any, x: torch.Tensor, fake: list[int]) -> tuple[list[tuple[str, torch.Tensor]], float]:
    """The linear probe's margin split over the positions of each stage (and the pooled head map): a list of
    (name, (N, h, w)) whose sums plus the returned bias give the margin exactly."""
    weight, bias = model.classifier.weight.detach().float(), model.classifier.bias.detach().float()
    if weight.shape[0] != 2:
        raise Unavailable(f"a linear probe with {weight.shape[0]} classes: the margin is not linear in its features")
    real = 1 - fake[0]
    w, b = weight[fake[0]] - weight[real], float(bias[fake[0]] - bias[real])
    bb, cfg = model.backbone, model.config
    stages = [i for i in range(len(bb.blocks)) if i in cfg.stages] if cfg.features != "head" else []
    widths = [bb.blocks[i][-1].conv_pwl.out_channels for i in stages]
    means, stds = torch.split(w[: 2 * sum(widths)], [sum(widths)] * 2) if stages else (w[:0], w[:0])
    cells, at = [], 0
    with torch.no_grad():
        a = bb.bn1(bb.conv_stem(x))
        for i, block in enumerate(bb.blocks):
            a = block(a)
            if i in stages:
                c = widths[stages.index(i)]
                cells.append((f"stage {i}", _stage_share(a.float(), means[at:at + c], stds[at:at + c])))
                at += c
        if cfg.features != "stages":
            z = bb.bn2(bb.conv_head(a)).float()
            cells.append(("head", torch.einsum("nchw,c->nhw", z, w[2 * sum(widths):]) / (z.shape[2] * z.shape[3])))
    return cells, b


def _stage_share(a: torch.Tensor, w_mean: torch.Tensor, w_std: torch.Tensor) -> torch.Tensor:
    """One stage's share of the margin per position: w_mean·a/HW + w_std·(a - mean)²/(HW·std)."""
    hw = a.shape[2] * a.shape[3]
    mu = a.mean(dim=(2, 3), keepdim=True)
    sd = a.std(dim=(2, 3), unbiased=False, keepdim=True)
    spread = (a - mu) ** 2 / sd.clamp_min(1e-12)
    return (torch.einsum("nchw,c->nhw", a, w_mean) + torch.einsum("nchw,c->nhw", spread, w_std)) / hw


def is_probe(lm: LoadedModel) -> bool:
    """The model is the kit's linear probe (``model_type: kit_probe``)."""
    return getattr(getattr(lm.module, "config", None), "model_type", "") == "kit_probe"


def heat_maps(lm: LoadedModel, crops: np.ndarray) -> Maps:
    """Heat maps of uint8 crops (N, S, S, 3) for ``lm`` by its type (see the module's text); ``Unavailable`` when
    the model has no spatial feature map."""
    module = getattr(lm.module, "_orig_mod", lm.module)
    x = normalized(crops, lm.data, lm.device)
    size = crops.shape[1]
    if is_probe(lm):
        cells, bias = probe_cells(module, x, lm.fake_indices)
        total = sum(c.sum(dim=(1, 2)) for _, c in cells) + bias
        maps = sum(_density(c, size) for _, c in cells)
        return Maps(maps.cpu().numpy(), "linear probe decomposition", ", ".join(n for n, _ in cells),
                    total.cpu().numpy())
    name, layer = last_feature_map(module, x)
    cells, m = grad_cam_cells(module, x, lm.fake_indices, layer)
    return Maps(_density(cells, size).cpu().numpy(), "Grad-CAM", name, m.cpu().numpy())


def method(lm: LoadedModel) -> str:
    """What ``heat_maps`` draws for this model, in words (or why it draws none)."""
    if is_probe(lm):
        cfg = lm.module.config
        return (f"linear probe: its weights mapped onto the feature maps of stages {cfg.stages} "
                f"(channel mean and std){' and the pooled head map' if cfg.features != 'stages' else ''}; the maps add "
                "up exactly to the fake-vs-real logit margin minus the bias")
    x = torch.zeros(1, 3, lm.size, lm.size, device=lm.device)
    try:
        name, _ = last_feature_map(getattr(lm.module, "_orig_mod", lm.module), x)
    except Unavailable as e:
        return str(e)
    return (f"Grad-CAM (signed) on {name}, the last spatial feature map of {lm.info.get('architecture', 'the model')}; "
            "for a head that is linear on that map's average (EfficientNet-Lite) it is exactly the map's share of "
            "the fake-vs-real logit margin")


def pick_frames(probs: np.ndarray, towards_fake: bool, k: int = 3) -> np.ndarray:
    """The ``k`` crops that pushed the call most: highest P(fake) when ``towards_fake``, else lowest (frame order)."""
    order = np.argsort(-probs if towards_fake else probs, kind="stable")[:k]
    return np.sort(order)


def figure(rows: list[dict[str, Any]], per_file: int = 3) -> plt.Figure:
    """One row per file: its name and figures, then up to ``per_file`` pairs of crop and heat map. Each row dict has
    ``title``, ``crops`` (k, S, S, 3), ``maps`` (k, S, S), ``margins`` (k,), ``probs`` (k,), ``indices`` (frame
    numbers); each heat map is titled with the crop's fake-vs-real logit margin, the map's total and the rest (the
    bias, and for Grad-CAM what the map does not explain)."""
    n = max(1, len(rows))
    fig, axes = plt.subplots(n, 1 + 2 * per_file, figsize=(2.9 + 2.7 * per_file, 1.8 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1.7] + [1] * (2 * per_file)})
    for ax in axes.ravel():
        ax.axis("off")
    for ax_row, r in zip(axes, rows):
        ax_row[0].text(0, 0.5, textwrap.fill(r["title"], 30), transform=ax_row[0].transAxes, fontsize=8,
                       va="center", color=r.get("color", "k"))
        for j in range(min(per_file, len(r["crops"]))):
            limit = float(np.abs(r["maps"][j]).max()) or 1.0
            ax_row[1 + 2 * j].imshow(r["crops"][j])
            ax_row[1 + 2 * j].set_title(f"frame {r['indices'][j]}  p={r['probs'][j]:.2f}", fontsize=6.5)
            ax_row[2 + 2 * j].imshow(r["crops"][j].mean(axis=2), cmap="gray", vmin=0, vmax=255)
            ax_row[2 + 2 * j].imshow(r["maps"][j], cmap="bwr", vmin=-limit, vmax=limit, alpha=0.55)
            total = float(r["maps"][j].sum())
            ax_row[2 + 2 * j].set_title(f"margin {r['margins'][j]:+.2f} = map {total:+.2f} "
                                        f"{r['margins'][j] - total:+.2f}", fontsize=6)
    if not rows:
        axes[0][0].text(0, 0.5, "no file in this group", fontsize=9)
    fig.tight_layout(pad=0.4)
    return fig


def rows_for(lm: LoadedModel, chosen: pd.DataFrame, crops_of: Any, per_file: int = 3) -> list[dict[str, Any]]:
    """Figure rows of the ``chosen`` files (with ``row``, ``filename``, ``truth``, ``prob_fake``, ``why``):
    ``crops_of(row)`` gives (crops, P(fake) per crop, frame indices)."""
    out = []
    for _, f in chosen.iterrows():
        crops, probs, indices = crops_of(int(f["row"]))
        if not len(crops):
            out.append({"title": f"{f['why']}: {f['filename']} — no crop", "crops": [], "maps": [], "margins": [],
                        "probs": [], "indices": []})
            continue
        pick = pick_frames(np.asarray(probs), bool(f["prob_fake"] >= f["threshold"]), per_file)
        maps = heat_maps(lm, crops[pick])
        out.append({"title": f"{f['why']}: {f['filename']}  (truth {'fake' if f['truth'] else 'real'}, "
                             f"prob_fake {f['prob_fake']:.3f})", "crops": crops[pick], "maps": maps.maps,
                    "margins": maps.margin,
                    "probs": np.asarray(probs)[pick], "indices": np.asarray(indices)[pick],
                    "color": "tab:red" if f["why"].startswith("false") else "tab:green"})
    return out
