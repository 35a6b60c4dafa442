"""Train the base image-text space that ships inside skulens (``--model base``).

    python benchmarks/train_base_space.py --ridge-alpha 10000 --search-weight 0.3 \\
        --zero-shot-image-weight 0.5 --zero-shot-text-weight 0.3

Data: the training pool of the new-products protocol (``myntra/`` ids < 18000 + ``myntra_more/``, minus the
families of the seeded 1,000-product test gallery), so the benchmark's gallery stays unseen. Myntra's
product data is MIT-licensed (Param Aggarwal, Kaggle "Fashion Product Images (Small)"). The configuration
and blend weights are the ones ``benchmarks/generalize.py`` chose on validation rows (pass them here).
Writes ``src/skulens/data/base_space/`` (config.json + weights.npz + manifest.json with the weights'
sha256, the data, the licence and this command).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from skulens.catalog import load_catalog  # noqa: E402
from skulens.catalog.splits import new_products_split  # noqa: E402
from skulens.heads.align import AlignConfig  # noqa: E402
from skulens.tasks.align import AlignmentModel  # noqa: E402
from skulens.tasks.align.base_space import read_manifest, write_manifest  # noqa: E402

TARGET = Path(__file__).resolve().parents[1] / "src" / "skulens" / "data" / "base_space"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-encoders", default="efficientnet-lite0")
    parser.add_argument("--text-encoders", default="minilm")
    parser.add_argument("--ridge-alpha", type=float, default=0.0, help="> 0: closed-form ridge space; 0: contrastive heads")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--search-weight", type=float, default=0.0)
    parser.add_argument("--zero-shot-image-weight", type=float, default=0.0)
    parser.add_argument("--zero-shot-text-weight", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(TARGET))
    parser.add_argument(
        "--blend-only", action="store_true", help="Keep the trained weights in --out; only set the blend weights (chosen later)."
    )
    args = parser.parse_args()
    command = shlex.join(["python", Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    weights = {
        "search": args.search_weight,
        "zero_shot_image": args.zero_shot_image_weight,
        "zero_shot_text": args.zero_shot_text_weight,
    }
    if args.blend_only:
        out = Path(args.out)
        manifest = read_manifest(out)
        model = AlignmentModel.load(out)
        model.blend_weights_ = weights
        model.save(out)
        manifest.update(identity=model.identity, blend_weights=weights, blend_command=command)
        manifest = write_manifest(out, **{k: v for k, v in manifest.items() if k != "weights_sha256"})
        print(f"set blend weights {weights} in {out}: {manifest}")
        return

    split = new_products_split(load_catalog("myntra"), [load_catalog("myntra_more")], seed=args.seed)
    config = AlignConfig(ridge_alpha=args.ridge_alpha, epochs=args.epochs, patience=3, seed=args.seed)
    model = AlignmentModel(args.image_encoders.split(","), args.text_encoders.split(","), head_config=config, progress=True)
    model.fit(split.train)
    model.blend_weights_ = weights
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    model.save(out)
    manifest = write_manifest(
        out,
        identity=model.identity,
        trained_pairs=model.trained_pairs_,
        data="myntra/ ids < 18000 + myntra_more/ (new-products protocol training pool, gallery families removed)",
        licence="Myntra product data: MIT (Param Aggarwal, Kaggle 'Fashion Product Images (Small)')",
        command=command,
    )
    print(f"wrote {out}: {manifest}")


if __name__ == "__main__":
    main()
