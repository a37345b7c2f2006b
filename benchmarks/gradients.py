"""Benchmark: how fast are the saliency maps? (target: 1,000 spectra in about a second on 2 cores)

    python benchmarks/gradients.py [--n 1000] [--batch-size 256]

Times ``gradients.label_gradients`` (∂label/∂flux of every spectrum, label and pixel) on random
spectra through untrained networks: the slides' CNN on the RAVE grid (987 px, 4 labels) —
first call (includes tracing the TensorFlow function) and a repeat — then the paper's CNN
(912 px, 9 labels) and a 5-member ensemble of slides' CNNs. Prints a table of spectra per second.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from ravecnn_utils.ensemble import Ensemble, LabelScaler  # noqa: E402
from ravecnn_utils.gradients import label_gradients  # noqa: E402
from ravecnn_utils.labels import CORE_LABELS  # noqa: E402
from ravecnn_utils.model import paper_cnn, slides_cnn  # noqa: E402
from common import timed  # noqa: E402  (benchmarks/common.py)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    n, bs = args.n, args.batch_size
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)

    slides = slides_cnn(n_pixels=987)
    x987 = rng.normal(1.0, 0.05, (n, 987, 1)).astype(np.float32)
    g, t_first = timed(label_gradients, slides, x987, batch_size=bs)
    _, t_repeat = timed(label_gradients, slides, x987, batch_size=bs)

    paper = paper_cnn(n_pixels=912)
    x912 = rng.normal(1.0, 0.05, (n, 912, 1)).astype(np.float32)
    label_gradients(paper, x912[:bs], batch_size=bs)  # trace once
    _, t_paper = timed(label_gradients, paper, x912, batch_size=bs)

    members = [slides_cnn(n_pixels=987, name=f"slides_{i}") for i in range(5)]
    ens = Ensemble(members, LabelScaler([3500, 0, -2.5, -0.2], [3500, 5, 3, 0.6]), CORE_LABELS)
    _, t_ens_first = timed(label_gradients, ens, x987, batch_size=bs)
    _, t_ens = timed(label_gradients, ens, x987, batch_size=bs)

    rows = [
        ("slides CNN, 987 px × 4 labels, first call (traces)", t_first),
        ("slides CNN, 987 px × 4 labels, repeat", t_repeat),
        ("paper CNN, 912 px × 9 labels (traced)", t_paper),
        ("ensemble of 5 slides CNNs, first call (traces 5)", t_ens_first),
        ("ensemble of 5 slides CNNs, repeat", t_ens),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"label_gradients on {n:,} random spectra, batch_size {bs}, "
          f"output {g.shape} {g.dtype}; {os.cpu_count()} CPUs visible")
    print(f"{'what':<{width}}  {'time':>8}  {'spectra/s':>10}")
    for what, seconds in rows:
        print(f"{what:<{width}}  {seconds:>7.2f}s  {n / seconds:>10,.0f}")


if __name__ == "__main__":
    main()
