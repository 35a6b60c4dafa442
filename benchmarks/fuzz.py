"""Bounded fuzzing of the image loader, the catalog readers and the model-folder loader.

The image and catalog targets run under atheris (coverage-guided libFuzzer, each in a child process,
seeded with valid files); the model-folder target runs under hypothesis (random configs and byte
mutations of a real saved model). Every target accepts a skulens error or a result; any other
exception is a crash. Writes ``fuzz`` numbers into ``benchmarks/results/reliability.json``.

    OMP_NUM_THREADS=1 python benchmarks/fuzz.py --image-runs 80000 --catalog-runs 25000 --model-runs 2000
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the fuzz targets are shared with the property tests
RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"


def atheris_child(target: str, runs: int, corpus: Path, artifacts: Path) -> None:
    """Run one atheris target in this process (it exits when done or at the first crash)."""
    import warnings

    import atheris

    warnings.simplefilter("ignore")  # Pillow warns on every corrupt EXIF block

    with atheris.instrument_imports(include=["skulens", "PIL", "fuzz_targets"]):
        import fuzz_targets

    workdir = Path(tempfile.mkdtemp(prefix="skulens-fuzz-"))
    suffixes = fuzz_targets.CATALOG_SUFFIXES

    def one(data: bytes) -> None:
        if target == "image":
            fuzz_targets.image_target(data)
        else:
            fuzz_targets.catalog_target(data[1:], suffixes[data[0] % len(suffixes)] if data else ".csv", workdir)

    atheris.Setup(
        [sys.argv[0], f"-runs={runs}", f"-artifact_prefix={artifacts}/", "-max_len=4096", "-rss_limit_mb=4096", str(corpus)],
        one,
    )
    atheris.Fuzz()


def write_corpus(target: str, folder: Path) -> None:
    from fuzz_targets import seed_images

    folder.mkdir(parents=True, exist_ok=True)
    if target == "image":
        seeds = seed_images()
    else:
        csv = b"id,title,category,image\n1,Red shirt,Apparel >> Tops,img/a.jpg\n2,Pan,Kitchen,\n"
        tsv = csv.replace(b",", b"\t")
        jsonl = b'{"id": "1", "title": "Pan", "category": "Kitchen"}\n{"id": "2", "review_text": "good", "rating": 5}\n'
        seeds = [b"\x00" + csv, b"\x01" + tsv, b"\x02" + jsonl, b"\x03[" + jsonl.replace(b"}\n{", b"},{").strip() + b"]"]
        seeds.append(b"\x00id,review_text,rating\n1,Great,5\n2,Bad,1\n")
    for i, data in enumerate(seeds):
        (folder / f"seed{i}").write_bytes(data)


def run_atheris(target: str, runs: int) -> dict:
    """Fuzz ``target`` for ``runs`` executions in a child process; executions, crashes, seconds."""
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{target}-") as tmp:
        corpus, artifacts = Path(tmp) / "corpus", Path(tmp) / "artifacts"
        artifacts.mkdir()
        write_corpus(target, corpus)
        started = time.perf_counter()
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                target,
                "--runs",
                str(runs),
                "--corpus",
                str(corpus),
                "--artifacts",
                str(artifacts),
            ],
            capture_output=True,
            text=True,
        )
        seconds = time.perf_counter() - started
        log = child.stdout + child.stderr
        done = re.search(r"Done (\d+) runs", log)
        counts = [int(n) for n in re.findall(r"^#(\d+)\s", log, flags=re.MULTILINE)]
        executions = int(done.group(1)) if done else max(counts, default=0)
        crashes = sorted(p.name for p in artifacts.iterdir())
        if child.returncode != 0 or crashes:
            kept = Path(tempfile.mkdtemp(prefix=f"skulens-fuzz-crashes-{target}-"))
            for path in artifacts.iterdir():
                path.replace(kept / path.name)
            (kept / "log.txt").write_text(log)
            print(f"{target}: crash inputs and the log kept in {kept}", file=sys.stderr)
        return {
            "engine": "atheris",
            "executions": executions,
            "crashes": len(crashes) or int(child.returncode != 0),
            "crash_files": crashes,
            "seconds": round(seconds, 1),
        }


def run_model_fuzz(runs: int) -> dict:
    """Random configs and mutated weights of real saved models, through hypothesis."""
    from fuzz_targets import ModelTemplate, mutate
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from serve_helpers import train_tiny, train_tiny_reviews

    work = Path(tempfile.mkdtemp(prefix="skulens-fuzz-models-"))
    templates = {
        "categorize": ModelTemplate(train_tiny(work, encoders=("tfidf",), name="text-only")),
        "reviews": ModelTemplate(train_tiny_reviews(work)),
    }
    counter = {"executions": 0, "crashes": 0}
    crashes: list[str] = []
    values = st.recursive(
        st.none() | st.booleans() | st.integers(-5, 10**12) | st.floats(allow_nan=True) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=10,
    )
    flips = st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)), max_size=8)

    @settings(max_examples=runs, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(["categorize", "reviews"]), st.data(), flips, st.one_of(st.none(), st.integers(0, 40_000)))
    def fuzz(task, data, changes, cut):
        template = templates[task]
        config = dict(template.config)
        if data.draw(st.booleans()):
            for key in data.draw(st.lists(st.sampled_from([*config, "extra"]), min_size=1, max_size=3)):
                config[key] = data.draw(values)
            weights = template.weights
        else:
            weights = mutate(template.weights, changes, cut)
        counter["executions"] += 1
        try:
            template.load(config, weights, work)
        except Exception as exc:  # noqa: BLE001 - a crash: recorded, and the run goes on
            counter["crashes"] += 1
            crashes.append(f"{type(exc).__name__}: {str(exc)[:200]}")

    started = time.perf_counter()
    fuzz()
    return {
        "engine": "hypothesis",
        "executions": counter["executions"],
        "crashes": counter["crashes"],
        "crash_examples": sorted(set(crashes))[:10],
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-runs", type=int, default=80_000)
    parser.add_argument("--catalog-runs", type=int, default=25_000)
    parser.add_argument("--model-runs", type=int, default=2_000)
    parser.add_argument("--child", choices=["image", "catalog"], help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--artifacts", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        atheris_child(args.child, args.runs, args.corpus, args.artifacts)
        return
    from reliability_results import update_results

    targets = {
        "image_loader": run_atheris("image", args.image_runs),
        "catalog_readers": run_atheris("catalog", args.catalog_runs),
        "model_folder_loader": run_model_fuzz(args.model_runs),
    }
    for name, result in targets.items():
        print(
            f"{name}: {result['executions']:,} executions, {result['crashes']} crashes ({result['engine']}, {result['seconds']} s)"
        )
    command = " ".join(["OMP_NUM_THREADS=1", "python", "benchmarks/fuzz.py", *sys.argv[1:]])
    update_results(
        RESULTS,
        {
            "fuzz_executions": sum(r["executions"] for r in targets.values()),
            "fuzz_crashes": sum(r["crashes"] for r in targets.values()),
            "fuzz_targets": targets,
        },
        "fuzz",
        command,
    )


if __name__ == "__main__":
    main()
