"""Token sampling with a key/value cache (O(N) per token) against recomputing the whole window for every token.

Samples ``--tokens`` tokens from the same token prior, prefix and random numbers both ways,
checks that the tokens are identical, and prints the time ratio measured in this run (best
of 3 each). Timing does not depend on the weights, so the prior is freshly initialised at
the full ``token-transformer`` size (d 256, 4 layers, context 128); longer than the context,
both ways slide the window identically.
Goal: the cache at least 3x faster for 128 tokens (one full context, 6 s of music).

Usage: python benchmarks/token_cache.py [--tokens 128] [--batch 4]
"""
import argparse

import numpy as np

from musiclib import set_seed
from musiclib.models import token_transformer
from timing import best_time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()

    config = token_transformer.TokenTransformer.Settings.full().to_dict()
    set_seed(0)
    prior = token_transformer.TokenPrior(512, config["context"], config["d_model"], config["heads"], config["layers"]).eval()
    prefix = np.zeros((args.batch, 0), np.int64)
    print(f"prior: d {config['d_model']}, {config['layers']} layers, context {config['context']}; "
          f"{args.batch} sequences of {args.tokens} tokens")

    token_transformer.sample(prior, prefix, 4)  # warm-up: first calls allocate and pick kernels
    t_cached, cached = best_time(lambda: token_transformer.sample(prior, prefix, args.tokens, seed=1), repeat=3)
    t_full, full = best_time(lambda: token_transformer.sample(prior, prefix, args.tokens, seed=1, use_cache=False), repeat=3)

    assert np.array_equal(cached, full), "the two ways sampled different tokens"
    print(f"key/value cache:          {t_cached:8.3f} s")
    print(f"recompute the whole window: {t_full:6.3f} s")
    print("tokens identical: yes")
    print(f"ratio recompute / cache: {t_full / t_cached:.1f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
