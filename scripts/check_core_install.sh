#!/usr/bin/env bash
# Install skulens' core alone (no extras) into a clean virtual environment and categorize a drawn catalog with it.
#
#   scripts/check_core_install.sh [WORKDIR]     (default: a new temporary folder; takes minutes: it downloads the core)
#
# Checks: `pip install .` brings no extra's package; `skulens categorize train` (EfficientNet-Lite0 photos + TF-IDF
# text) and `skulens categorize predict` run on a catalog of drawn photos; training without MLflow is untracked with
# a warning; a command that needs an extra (`skulens serve`) stops with one line naming it. Not part of `make test`.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="${1:-$(mktemp -d -t skulens-core-XXXXXX)}"
mkdir -p "$WORK"
VENV="$WORK/venv"
step() { printf '\n== %s\n' "$*"; }

step "clean venv in $VENV"
"$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install --quiet --upgrade pip
# torch first and pinned: 2.13.0 is the CPU build (an unpinned torch pulls a multi-GB CUDA build).
"$PY" -m pip install --quiet torch==2.13.0

step "pip install $REPO (core only, no extras)"
# A copy of the sources, so the build leaves no build/ or *.egg-info in the checkout.
cp -r "$REPO/src" "$REPO/pyproject.toml" "$REPO/README.md" "$WORK/"
"$PY" -m pip install --quiet "$WORK"
"$PY" - <<'EOF'
import importlib.util
from skulens.extras import EXTRAS
present = sorted({m for modules in EXTRAS.values() for m in modules if importlib.util.find_spec(m)})
print("extras' modules installed:", present or "none")
raise SystemExit(1 if present else 0)
EOF

step "draw a catalog"
CATALOG="$WORK/catalog"
mkdir -p "$CATALOG"
"$PY" - "$CATALOG" <<'EOF'
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw

root = Path(sys.argv[1])
rng = np.random.default_rng(0)
kinds = {"Bags": ((170, 40, 40), "leather handbag"), "Hats": ((40, 150, 40), "woollen beanie"), "Shoes": ((40, 40, 170), "running shoe")}
rows = []
for i in range(60):
    name, (colour, words) = list(kinds.items())[i % 3]
    image = Image.new("RGB", (96, 96), tuple(int(c) for c in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(image)
    shape = [draw.rectangle, draw.ellipse, draw.polygon][i % 3]
    box = [int(v) for v in rng.integers(8, 28, 2)] + [int(v) for v in rng.integers(68, 88, 2)]
    shape(box if i % 3 < 2 else [(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])], fill=colour)
    image.save(root / f"p{i:02d}.jpg", quality=90)
    rows.append({"id": f"sku{i:03d}", "title": f"{words} {i}", "description": f"a {name.lower()} item",
                 "image": f"p{i:02d}.jpg", "category": name})
pd.DataFrame(rows).to_csv(root / "products.csv", index=False)
print(f"{len(rows)} products, {len(kinds)} categories in {root / 'products.csv'}")
EOF

export HF_HUB_OFFLINE=1 SKULENS_CACHE="$WORK/cache"
SKULENS="$VENV/bin/skulens"
cd "$WORK"

step "skulens categorize train (efficientnet-lite0 + tfidf)"
"$SKULENS" categorize train "$CATALOG/products.csv" -e efficientnet-lite0 -e tfidf --out "$WORK/model" --test-size 0.25

step "skulens categorize predict"
"$SKULENS" categorize predict "$WORK/model" --image "$CATALOG/p00.jpg" --text "leather handbag" -k 2

step "a command that needs an extra names it"
if "$SKULENS" serve --models "$WORK" 2>"$WORK/serve.err"; then
    echo "error: skulens serve started without the serve extra" >&2
    exit 1
fi
cat "$WORK/serve.err"
grep -q "pip install 'skulens\[serve\]'" "$WORK/serve.err"

step "core install OK ($WORK)"
