"""Free-running GRUV generation: carrying the LSTM state (O(N)) against the seed's re-feeding (O(N²)).

Generates ``--seconds`` of audio (blocks) with the same model, prime and sampling noise both
ways, checks that the outputs agree, and prints the time ratio measured in this run (best of
3 for the stateful loop, one run of the slow re-feeding).
Goal: stateful at least 10x faster for 30 s of output. Timing does not depend on the weights,
so the model is freshly initialised (the default ``gruv`` size; ``--seed-size`` for the
seed's 16.8 M-parameter replica).

Usage: python benchmarks/sequence_generation.py [--seconds 30] [--seed-size]
"""
import argparse

import torch

from musiclib import AudioConfig, set_seed
from musiclib.datasets import gruv
from musiclib.models import gruv_lstm
from timing import best_time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--seed-size", action="store_true", help="the seed's replica instead of the default size")
    args = parser.parse_args()

    model_class = gruv_lstm.SeedGRUV if args.seed_size else gruv_lstm.GRUV
    config = model_class.Settings.full().to_dict()
    set_seed(0)
    model = model_class(model_class.Settings.full(), AudioConfig()).eval()
    model.residual_std.fill_(0.5)
    size = gruv.feature_size(config["block_size"], config["form"])
    n_blocks = int(round(args.seconds * 22050 / config["hop"]))
    prime = torch.randn(1, 10, size)
    print(f"model: {'gruv-seed' if args.seed_size else 'gruv'}, hidden {config['hidden_size']}, {size} features per block; "
          f"{n_blocks} blocks = {args.seconds:.0f} s at 22,050 Hz, hop {config['hop']}")

    gruv_lstm.refeed_run(model, prime, 8, seed=1)  # warm-up: first calls allocate and pick kernels
    t_stateful, stateful = best_time(lambda: gruv_lstm.free_run(model, prime, n_blocks, seed=1), repeat=3)
    t_refeed, refed = best_time(lambda: gruv_lstm.refeed_run(model, prime, n_blocks, seed=1), repeat=1)

    difference = float((stateful - refed).abs().max())
    assert difference < 1e-3, f"the two methods disagree by {difference}"
    print(f"stateful (carry the LSTM state): {t_stateful:8.2f} s")
    print(f"re-feed (the seed's method):     {t_refeed:8.2f} s")
    print(f"max |difference| between outputs: {difference:.1e}")
    print(f"ratio re-feed / stateful: {t_refeed / t_stateful:.1f}x (goal >= 10x)")


if __name__ == "__main__":
    main()
