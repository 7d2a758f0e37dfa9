"""Trace signals: a detector made of 21 measurements of forgery traces per face crop and one logistic regression on
their mean and spread over a file's crops (``model_type: kit_traces``).

Each crop is a square around the detected face with a margin (``face_margin``; the kit's 1.3 for the recommended
detector): the face box is its centred square of side S / margin, the rest is the surround. Per crop, on its pixels:

* sharpness (log variance of the Laplacian) of the face interior, of the surround, their ratio; of the mouth and the
  eye regions and their ratio (a pasted or re-generated lower face is sharper or blurrier than the eyes);
* colour mismatch (CIE Lab means) between the face interior and the surround (a blended face keeps its own colour);
* the share of the face's spectral power above half the Nyquist radius; the slope of its radial power spectrum and
  how far the highest quarter lies off that line (up-sampling leaves too little or too much there);
* noise: mean absolute residual of a 3×3 median filter in the face and the surround and their ratio; chroma noise
  against luma noise (a camera's sensor noise is mostly luma);
* left/right asymmetry of the eye region; saturation mean and spread; 8-pixel blockiness; entropy of the gradient
  directions.

A file is described by the mean and the standard deviation of each signal over its crops (42 numbers: for a video the
spread over its frames; 0 for a photo), and scored by a logistic regression fitted by
``lib.training.traces.TraceSignals``, with the standardisation folded into one linear layer. Because of the
spread, the score is a function of all of a file's crops at once: the model has a file head (``file_logit``), which
inference uses instead of an aggregation of per-frame probabilities (``aggregate: file_head``). ``forward`` scores
each crop as if it were a file of one crop, so the model also loads and runs like any image classifier.

Importing this module registers the architecture with the transformers Auto classes (``lib.backbones`` does so before
loading a folder). The model undoes the input normalisation of its data config, so it reads the crops' 0-255 values
whatever ``preprocessor_config.json`` says.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForImageClassification, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

MODEL_TYPE = "kit_traces"
SIGNALS = ("lap_inner", "lap_ring", "lap_ratio", "lap_mouth", "lap_eyes", "mouth_eyes", "lab_dl", "lab_da", "lab_db",
           "hf_share", "noise_inner", "noise_ring", "noise_ratio", "chroma_luma_noise", "spec_slope", "spec_hf_resid",
           "eye_lr_diff", "sat_mean", "sat_std", "blockiness", "grad_entropy")
FEATURES = tuple(f"{s}_mean" for s in SIGNALS) + tuple(f"{s}_std" for s in SIGNALS)  # what the regression reads


class KitTracesConfig(PretrainedConfig):
    """The crop geometry the signals assume (``margin``) and how the inputs were normalised (undone in forward)."""

    model_type = MODEL_TYPE

    def __init__(self, margin: float = 1.3, image_mean: tuple[float, ...] = (0.485, 0.456, 0.406),
                 image_std: tuple[float, ...] = (0.229, 0.224, 0.225), rescale: float = 1 / 255, **kwargs: Any):
        self.margin, self.image_mean, self.image_std, self.rescale = float(margin), list(image_mean), list(image_std), \
            float(rescale)
        super().__init__(**kwargs)


class KitTracesForImageClassification(PreTrainedModel):
    """Crops → 21 trace signals each → a file's mean and spread → one linear layer (logits ``[0, w·f + b]``)."""

    config_class = KitTracesConfig
    main_input_name = "pixel_values"

    def __init__(self, config: KitTracesConfig):
        super().__init__(config)
        self.classifier = nn.Linear(len(FEATURES), config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """A zero head until the regression is folded in (``lib.training.traces.TraceSignals``)."""
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.weight)
            nn.init.zeros_(module.bias)

    def raw(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The 0-255 RGB values of normalised inputs (B, 3, S, S)."""
        c = self.config
        mean = torch.tensor(c.image_mean, dtype=torch.float32, device=pixel_values.device).view(1, 3, 1, 1)
        std = torch.tensor(c.image_std, dtype=torch.float32, device=pixel_values.device).view(1, 3, 1, 1)
        return ((pixel_values.float() * std + mean) / c.rescale).clamp(0, 255)

    def crop_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The 21 signals of every crop (B, 21), in the order of ``SIGNALS``."""
        return signals(self.raw(pixel_values), self.config.margin)

    def file_logit(self, features: torch.Tensor) -> torch.Tensor:
        """The fake-minus-real logit of one file from its crops' signals (n, 21): mean and spread, then the head."""
        x = torch.cat([features.mean(0), features.std(0, unbiased=False)])
        logits = self.classifier(x)
        return logits[1] - logits[0]

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                **kwargs: Any) -> ImageClassifierOutput:
        f = self.crop_features(pixel_values)
        logits = self.classifier(torch.cat([f, torch.zeros_like(f)], dim=1))  # each crop as a file of one crop
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


def new(margin: float, data: dict[str, Any], id2label: dict[int, str]) -> KitTracesForImageClassification:
    """A trace-signal model with a zero head for crops made with ``margin`` and normalised as ``data`` says."""
    id2label = {int(k): str(v) for k, v in id2label.items()}
    config = KitTracesConfig(margin=margin, image_mean=tuple(data["mean"]), image_std=tuple(data["std"]),
                             rescale=float(data["rescale"]), num_labels=len(id2label), id2label=id2label,
                             label2id={v: k for k, v in id2label.items()})
    return KitTracesForImageClassification(config).eval()


# ------------------------------------------------------------------------------------------------ the signals

def _gray(rgb: torch.Tensor) -> torch.Tensor:
    """Luma (B, H, W) as OpenCV's RGB→GRAY, rounded like its 8-bit output."""
    return torch.round(0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2])


def _ycrcb(rgb: torch.Tensor) -> torch.Tensor:
    y = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    cr, cb = (rgb[:, 0] - y) * 0.713 + 128, (rgb[:, 2] - y) * 0.564 + 128
    return torch.round(torch.stack([y, cr, cb], 1)).clamp(0, 255)


def _lab(rgb: torch.Tensor) -> torch.Tensor:
    """CIE Lab (D65) of 0-255 sRGB, L scaled to 0-255 as OpenCV's 8-bit conversion (a and b without its offset)."""
    v = rgb / 255
    lin = torch.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    m = torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                      [0.019334, 0.119193, 0.950227]], dtype=rgb.dtype, device=rgb.device)
    xyz = torch.einsum("ij,bjhw->bihw", m, lin)
    xyz = xyz / torch.tensor([0.950456, 1.0, 1.088754], dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp(min=1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    big_l = torch.where(xyz[:, 1] > 0.008856, 116 * f[:, 1] - 16, 903.3 * xyz[:, 1])
    return torch.stack([big_l * 255 / 100, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def _laplacian(g: torch.Tensor) -> torch.Tensor:
    """OpenCV's 3×3 Laplacian (ksize 1) of (B, H, W), borders reflected (BORDER_REFLECT_101)."""
    k = torch.tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=g.dtype, device=g.device).view(1, 1, 3, 3)
    return F.conv2d(F.pad(g.unsqueeze(1), (1, 1, 1, 1), mode="reflect"), k).squeeze(1)


def _lapvar(g: torch.Tensor) -> torch.Tensor:
    return torch.log(_laplacian(g).flatten(1).var(1, unbiased=False) + 1e-3)


def _median3(g: torch.Tensor) -> torch.Tensor:
    """3×3 median of (B, H, W), borders replicated (OpenCV's medianBlur)."""
    patches = F.unfold(F.pad(g.unsqueeze(1), (1, 1, 1, 1), mode="replicate"), 3)  # (B, 9, H*W)
    return patches.median(1).values.view_as(g)


def _box(margin: float, size: int) -> tuple[int, int, float]:
    """Start and end (exclusive) of the face box in a crop of ``size``, and its side."""
    side = size / margin
    o = (size - side) / 2
    return int(o), int(o + side), side


def _sharpness_colour(g: torch.Tensor, rgb: torch.Tensor, margin: float) -> list[torch.Tensor]:
    """lap_inner, lap_ring, lap_ratio, lap_mouth, lap_eyes, mouth_eyes, lab_dl, lab_da, lab_db."""
    a, b, w = _box(margin, g.shape[-1])
    ring = torch.ones_like(g[0], dtype=torch.bool)
    ring[a:b, a:b] = False
    inner = _lapvar(g[:, a + int(0.15 * w):b - int(0.1 * w), a + int(0.15 * w):b - int(0.15 * w)])
    lap = _laplacian(g)[:, ring]
    ring_var = torch.log(lap.var(1, unbiased=False) + 1e-3)
    mouth = _lapvar(g[:, int(a + 0.62 * w):int(a + 1.0 * w), int(a + 0.2 * w):int(a + 0.8 * w)])
    eyes = _lapvar(g[:, int(a + 0.15 * w):int(a + 0.5 * w), int(a + 0.1 * w):int(a + 0.9 * w)])
    lab = _lab(rgb)
    centre = lab[:, :, a + int(0.2 * w):b - int(0.2 * w), a + int(0.2 * w):b - int(0.2 * w)].flatten(2).mean(2)
    d = centre - lab[:, :, ring].mean(2)
    return [inner, ring_var, inner - ring_var, mouth, eyes, mouth - eyes, d[:, 0], d[:, 1], d[:, 2]]


def _spectrum(face: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """hf_share, spec_slope, spec_hf_resid of the face's luma (B, h, w)."""
    power = torch.fft.fftshift(torch.fft.fft2(face - face.mean((1, 2), keepdim=True)), dim=(1, 2)).abs() ** 2
    h, w = face.shape[1:]
    yy, xx = torch.meshgrid(torch.arange(h, device=face.device), torch.arange(w, device=face.device), indexing="ij")
    radius = torch.hypot(yy - h / 2, xx - w / 2)
    high = (radius / (min(h, w) / 2) > 0.5).to(power.dtype)
    share = torch.log((power * high).flatten(1).sum(1) / (power.flatten(1).sum(1) + 1e-9) + 1e-9)
    ring = radius.long().flatten()
    n = min(h, w) // 2
    sums = torch.zeros(power.shape[0], int(ring.max()) + 1, dtype=power.dtype, device=face.device)
    sums.index_add_(1, ring, power.flatten(1))
    profile = torch.log(sums / torch.bincount(ring).clamp(min=1).to(power.dtype) + 1e-6)[:, 1:n]
    fr = torch.log(torch.arange(1, profile.shape[1] + 1, dtype=power.dtype, device=face.device))
    slope = ((fr - fr.mean()) * (profile - profile.mean(1, keepdim=True))).sum(1) / ((fr - fr.mean()) ** 2).sum()
    icpt = profile.mean(1) - slope * fr.mean()
    q = profile.shape[1] // 4
    resid = (profile[:, -q:] - (slope[:, None] * fr[-q:] + icpt[:, None])).mean(1)
    return share, slope, resid


def _noise(g: torch.Tensor, ycc: torch.Tensor, margin: float) -> list[torch.Tensor]:
    """noise_inner, noise_ring, noise_ratio, chroma_luma_noise."""
    a, b, _ = _box(margin, g.shape[-1])
    ring = torch.ones_like(g[0], dtype=torch.bool)
    ring[a:b, a:b] = False
    res = (g - _median3(g)).abs()
    inner, outer = torch.log(res[:, a:b, a:b].flatten(1).mean(1) + 1e-3), torch.log(res[:, ring].mean(1) + 1e-3)
    face = ycc[:, :, a:b, a:b]
    per = [(face[:, c] - _median3(face[:, c])).abs().flatten(1).mean(1) for c in range(3)]
    chroma = torch.log((per[1] + per[2]) / 2 + 1e-3) - torch.log(per[0] + 1e-3)
    return [inner, outer, inner - outer, chroma]


def _eyes_colour_blocks(rgb: torch.Tensor, y: torch.Tensor, margin: float) -> list[torch.Tensor]:
    """eye_lr_diff, sat_mean, sat_std, blockiness."""
    a, b, w = _box(margin, y.shape[-1])
    eyes = y[:, int(a + 0.2 * w):int(a + 0.5 * w), int(a + 0.1 * w):int(a + 0.9 * w)]
    half = eyes.shape[2] // 2
    lr = (eyes[:, :, :half] - eyes[:, :, -half:].flip(2)).abs().flatten(1).mean(1) / \
        (eyes.flatten(1).std(1, unbiased=False) + 1e-3)
    face = rgb[:, :, a:b, a:b]
    top, low = face.max(1).values, face.min(1).values
    sat = torch.round(torch.where(top > 0, 255 * (top - low) / top.clamp(min=1e-6), torch.zeros_like(top))) / 255
    dh = (y[:, :, 1:] - y[:, :, :-1]).abs()
    on = (torch.arange(dh.shape[2], device=y.device) % 8) == 7
    block = torch.log(dh[:, :, on].flatten(1).mean(1) + 1e-3) - torch.log(dh[:, :, ~on].flatten(1).mean(1) + 1e-3)
    return [lr, sat.flatten(1).mean(1), sat.flatten(1).std(1, unbiased=False), block]


def _gradient_entropy(face: torch.Tensor) -> torch.Tensor:
    """Entropy of the directions (mod π, 18 bins, +1 each) of the face's Sobel gradients stronger than 10."""
    kx = torch.tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=face.dtype, device=face.device).view(1, 1, 3, 3)
    padded = F.pad(face.unsqueeze(1), (1, 1, 1, 1), mode="reflect")
    gx, gy = F.conv2d(padded, kx).squeeze(1), F.conv2d(padded, kx.transpose(2, 3)).squeeze(1)
    strong = (torch.hypot(gx, gy) > 10).flatten(1).to(face.dtype)
    angle = torch.remainder(torch.atan2(gy, gx), math.pi).flatten(1)
    bins = (angle / math.pi * 18).long().clamp(0, 17)
    hist = torch.ones(face.shape[0], 18, dtype=face.dtype, device=face.device).scatter_add_(1, bins, strong)
    p = hist / hist.sum(1, keepdim=True)
    return -(p * p.log()).sum(1)


def signals(rgb: torch.Tensor, margin: float) -> torch.Tensor:
    """The 21 trace signals (B, 21) of 0-255 RGB crops (B, 3, S, S) made with face margin ``margin``."""
    rgb = rgb.float()
    g, ycc = _gray(rgb), _ycrcb(rgb)
    a, b, _ = _box(margin, g.shape[-1])
    share, slope, resid = _spectrum(g[:, a:b, a:b])
    noise = _noise(g, ycc, margin)
    parts = [*_sharpness_colour(g, rgb, margin), share, *noise, slope, resid, *_eyes_colour_blocks(rgb, g, margin),
             _gradient_entropy(g[:, a:b, a:b])]
    return torch.stack(parts, 1)


def _register() -> None:
    AutoConfig.register(MODEL_TYPE, KitTracesConfig, exist_ok=True)
    AutoModelForImageClassification.register(KitTracesConfig, KitTracesForImageClassification, exist_ok=True)


_register()
