"""Parameter-space analysis: t-SNE of the weights of the adapted networks of a series."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from inrkit.errors import InvalidFileError, InvalidInputError
from inrkit.limits import MAX_SERIES_MEMBERS, check_range, inside_folder
from inrkit.models.io import load_model
from inrkit.signals.readers import read_json_file
from inrkit.utils import atomic_path


def weight_vectors(models_dir: str | Path) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """Flattened weights ``[M, P]``, labels ``[M]``, label name and member names from a
    ``meta-encode`` folder (read through its ``summary.json``)."""
    folder = Path(models_dir)
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise InvalidFileError(f"{folder}: no summary.json (run 'inrkit meta-encode' first)")
    summary = read_json_file(summary_path)
    try:
        if summary["command"] != "meta-encode":
            raise ValueError(f"written by {str(summary['command'])[:40]}")
        rows = [r for r in summary["inputs"] if r["status"] != "failed"]
        if len(rows) > MAX_SERIES_MEMBERS:
            raise InvalidFileError(f"{summary_path}: {len(rows)} members (at most {MAX_SERIES_MEMBERS})")
        files = [Path(str(r["output"])).name for r in rows]
        labels = np.asarray([float(r["label"]) for r in rows])
        label_name = str(summary["settings"]["series"]["label_name"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidFileError(f"{summary_path}: not a meta-encode summary ({exc})") from None
    if len(set(files)) != len(files):
        raise InvalidFileError(f"{summary_path}: a model is listed twice")
    vectors, size = [], None
    for name in files:
        model, _ = load_model(inside_folder(folder, name, f"{summary_path}: model"))
        vec = np.concatenate([p.detach().numpy().ravel() for p in model.parameters()])
        if size is not None and vec.size != size:
            raise InvalidFileError(f"{folder / name}: architecture differs from the other members")
        size = vec.size
        vectors.append(vec)
    return np.stack(vectors), labels, label_name, [Path(f).stem for f in files]


def tsne_embedding(vectors: np.ndarray, perplexity: float | None = None, seed: int = 0) -> np.ndarray:
    """2D t-SNE (scikit-learn, PCA init) of row vectors; perplexity defaults to min(30, (M-1)/3)."""
    m = vectors.shape[0]
    if m < 3:
        raise InvalidInputError(f"t-SNE needs at least 3 networks, got {m}")
    from sklearn.manifold import TSNE

    check_range("perplexity", perplexity, 0, None, low_open=True)  # NaN, inf and <= 0 refused
    perp = perplexity if perplexity is not None else max(1.0, min(30.0, (m - 1) / 3.0))
    if not 0 < perp < m:
        raise InvalidInputError(f"perplexity must be in (0, {m}), got {perp}")
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed)
    return tsne.fit_transform(vectors.astype(np.float64))


def tsne_plot(models_dir: str | Path, output: str | Path, perplexity: float | None = None,
              seed: int = 0) -> dict[str, Any]:
    """t-SNE of the adapted networks in ``models_dir``, plotted as a PNG coloured by label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check_range("perplexity", perplexity, 0, None, low_open=True)  # before any model is read
    vectors, labels, label_name, names = weight_vectors(models_dir)
    points = tsne_embedding(vectors, perplexity, seed)
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    sc = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="viridis", s=28)
    ax.plot(points[:, 0], points[:, 1], color="0.8", lw=0.6, zorder=0)
    fig.colorbar(sc, ax=ax, label=label_name)
    ax.set_title(f"t-SNE of {len(names)} adapted networks ({vectors.shape[1]} weights each)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    output = Path(output)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
    return {"output": str(output), "networks": len(names), "parameters": int(vectors.shape[1]),
            "label_name": label_name, "names": names, "labels": labels.tolist(), "points": points.tolist()}
