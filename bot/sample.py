"""A generated sample ML repository in DVC's layout, for `mlgate demo` and the tests.

It has what a real DVC project commits: `.dvc` files and `dvc.lock` (data versions, with md5,
size and nfiles), `dvc.yaml` declaring `metrics.json`, `params.yaml`, a small committed
feature sample and a tiny, deterministic `evaluate.py` (pure Python, no dependencies).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass

MLGATE_YML = """\
version: 1
metrics:
  source: {source}
evaluate:
  run: python3 evaluate.py
  timeout: 2m
gates:
  accuracy: {{min: 0.80, max_drop: 0.01}}
  loss: {{direction: lower, max_rise: 5%}}
"""

# The retrain loop of `mlgate demo`: new data on main retrains and mlgate opens the PR.
RETRAIN_YML = """\
retrain:
  run: python3 evaluate.py
  on_data: true
  outputs: [metrics.json]
"""

DVC_YAML = """\
stages:
  prepare:
    cmd: python3 prepare.py
    deps:
      - data/raw
    outs:
      - data/features.csv
  train:
    cmd: python3 train.py
    deps:
      - data/features.csv
      - data/images
    params:
      - train.epochs
      - train.learning_rate
    outs:
      - model.pkl
  evaluate:
    cmd: python3 evaluate.py
    deps:
      - model.pkl
      - data/features.csv
    metrics:
      - metrics.json:
          cache: false
"""


def score(rows: list[tuple[float, float, int]], epochs: int, rate: float) -> dict[str, float]:
    """Train a logistic regression by gradient descent; its accuracy and log loss."""
    import math

    w1 = w2 = b = 0.0
    for _ in range(epochs):
        for x1, x2, y in rows:
            p = 1 / (1 + math.exp(-(w1 * x1 + w2 * x2 + b)))
            w1 -= rate * (p - y) * x1
            w2 -= rate * (p - y) * x2
            b -= rate * (p - y)
    correct, loss = 0, 0.0
    for x1, x2, y in rows:
        p = min(max(1 / (1 + math.exp(-(w1 * x1 + w2 * x2 + b))), 1e-9), 1 - 1e-9)
        correct += (p >= 0.5) == bool(y)
        loss -= y * math.log(p) + (1 - y) * math.log(1 - p)
    return {"accuracy": round(correct / len(rows), 4), "loss": round(loss / len(rows), 4)}


# The repository's evaluate.py runs the very function above, so committed metrics and
# evaluated ones agree; it needs nothing but Python.
EVALUATE_PY = (
    '"""Train and evaluate a tiny model on data/features.csv; write metrics.json."""\n\n'
    "import csv\nimport json\nimport os\n\n\n"
    + inspect.getsource(score)
    + """

params = {}
with open("params.yaml") as f:
    for line in f:
        key, sep, value = line.strip().partition(":")
        if sep and value.strip():
            params[key.strip()] = float(value)
# /retrain passes its arguments as MLGATE_PARAM_<NAME>.
epochs = int(os.environ.get("MLGATE_PARAM_EPOCHS", params.get("epochs", 30)))
rate = float(os.environ.get("MLGATE_PARAM_LEARNING_RATE", params.get("learning_rate", 0.1)))
with open("data/features.csv") as f:
    rows = [(float(r["x1"]), float(r["x2"]), int(r["label"])) for r in csv.DictReader(f)]
metrics = score(rows, epochs, rate)
with open("metrics.json", "w") as f:
    json.dump(metrics, f, indent=2)
    f.write("\\n")
print("evaluated", len(rows), "rows with epochs", epochs, "and learning_rate", rate, metrics)
"""
)


@dataclass(frozen=True)
class DataVersion:
    """One version of the tracked data: how many images, how many feature rows, a noise level."""

    images: int
    rows: int
    noise: int  # every `noise`-th row has its label flipped (0: none)


def features_csv(version: DataVersion) -> str:
    """A deterministic, linearly separable sample with label noise, as the committed CSV."""
    lines = ["x1,x2,label"]
    for i in range(version.rows):
        x1 = ((i * 37) % 101) / 50 - 1
        x2 = ((i * 53) % 97) / 48 - 1
        label = int(x1 + 0.5 * x2 > 0)
        if version.noise and i % version.noise == 0:
            label = 1 - label
        lines.append(f"{x1:.4f},{x2:.4f},{label}")
    return "\n".join(lines) + "\n"


def _md5(*parts: object) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode(), usedforsecurity=False).hexdigest()


def images_dvc(version: DataVersion) -> str:
    """`data/images.dvc`: a directory output (hash ends in `.dir`) with size and nfiles."""
    return (
        "outs:\n"
        f"- md5: {_md5('images', version.images)}.dir\n"
        f"  size: {version.images * 6_512}\n"
        f"  nfiles: {version.images}\n"
        "  hash: md5\n"
        "  path: images\n"
    )


def dvc_lock(version: DataVersion, params: dict[str, float]) -> str:
    """`dvc.lock` in schema 2.0, consistent with the data version and parameters."""
    features = features_csv(version).encode()
    features_md5 = hashlib.md5(features, usedforsecurity=False).hexdigest()
    images_md5 = f"{_md5('images', version.images)}.dir"
    model_md5 = _md5("model", features_md5, images_md5, *sorted(params.items()))
    return f"""\
schema: '2.0'
stages:
  prepare:
    cmd: python3 prepare.py
    deps:
    - path: data/raw
      hash: md5
      md5: {_md5("raw", version.rows)}.dir
      size: {version.rows * 41}
      nfiles: {max(version.rows // 10, 1)}
    outs:
    - path: data/features.csv
      hash: md5
      md5: {features_md5}
      size: {len(features)}
  train:
    cmd: python3 train.py
    deps:
    - path: data/features.csv
      hash: md5
      md5: {features_md5}
      size: {len(features)}
    - path: data/images
      hash: md5
      md5: {images_md5}
      size: {version.images * 6_512}
      nfiles: {version.images}
    params:
      params.yaml:
        train.epochs: {int(params["epochs"])}
        train.learning_rate: {params["learning_rate"]}
    outs:
    - path: model.pkl
      hash: md5
      md5: {model_md5}
      size: 48213
"""


def params_yaml(params: dict[str, float]) -> str:
    # Flat keys: evaluate.py reads them without a YAML library.
    return f"epochs: {int(params['epochs'])}\nlearning_rate: {params['learning_rate']}\n"


def evaluate(version: DataVersion, params: dict[str, float]) -> dict[str, float]:
    """What `evaluate.py` writes for this data version and these parameters."""
    rows = [
        (float(x1), float(x2), int(label))
        for x1, x2, label in (line.split(",") for line in features_csv(version).splitlines()[1:])
    ]
    return score(rows, int(params["epochs"]), params["learning_rate"])


def files(
    version: DataVersion,
    params: dict[str, float],
    *,
    source: str = "git",
    retrain: bool = False,
) -> dict[str, str]:
    """Every file of the sample repository at one data version and parameter set; `retrain`
    configures the retrain loop on new data."""
    config = MLGATE_YML.format(source=source) + (RETRAIN_YML if retrain else "")
    return {
        ".github/mlgate.yml": config,
        "README.md": "# sample-model\n\nA tiny model versioned with DVC, gated by mlgate.\n",
        "dvc.yaml": DVC_YAML,
        "dvc.lock": dvc_lock(version, params),
        "data/images.dvc": images_dvc(version),
        "data/features.csv": features_csv(version),
        "params.yaml": params_yaml(params),
        "evaluate.py": EVALUATE_PY,
        "metrics.json": json.dumps(evaluate(version, params), indent=2) + "\n",
    }


BASE_DATA = DataVersion(images=1_848, rows=240, noise=9)
BASE_PARAMS: dict[str, float] = {"epochs": 30, "learning_rate": 0.1}
# More, cleaner data: the model improves.
BETTER_DATA = DataVersion(images=1_912, rows=300, noise=15)
# Noisy labels slipped into the new data: the model regresses.
WORSE_DATA = DataVersion(images=1_912, rows=300, noise=3)
