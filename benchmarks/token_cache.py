"""Token sampling with a key/value cache against recomputing the whole window for every row of tokens.

Samples ``--seconds`` of music (rows of ``Q`` residual-VQ tokens in the delay pattern) from the same token
prior, prefix and random numbers both ways, checks that the tokens are identical, and prints the time
ratio measured in this run (best of 3 each). Timing does not depend on the weights, so the prior is
freshly initialised at the full ``token-transformer`` size (d 256, 4 layers, context 128, the default
tokenizer's codebooks); longer than the context, both ways slide the window identically.
Goal: the cache at least 10x faster for 30 s of music.

Usage: python benchmarks/token_cache.py [--seconds 30] [--batch 4]
"""
import argparse

import numpy as np

from musiclib import AudioConfig, set_seed
from musiclib.models import token_transformer, vq
from timing import best_time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    config = token_transformer.TokenTransformer.Settings.full()
    tokenizer = vq.Tokenizer(config.tokenizer_config, AudioConfig())
    set_seed(0)
    prior = token_transformer.TokenPrior(tokenizer.codebook_size, tokenizer.tokens_per_frame, config.context, config.d_model,
                                         config.heads, config.layers).eval()
    frames = tokenizer.steps_for(args.seconds)
    prefix = np.zeros((args.batch, 0, tokenizer.tokens_per_frame), np.int64)
    print(f"prior: d {config.d_model}, {config.layers} layers, context {config.context} rows; {args.batch} sequences of "
          f"{args.seconds:g} s = {frames} frames of {tokenizer.tokens_per_frame} tokens ({frames + tokenizer.tokens_per_frame - 1} rows)")

    token_transformer.sample(prior, prefix, 4)  # warm-up: first calls allocate and pick kernels
    t_cached, cached = best_time(lambda: token_transformer.sample(prior, prefix, frames, seed=1), repeat=args.repeat)
    t_full, full = best_time(lambda: token_transformer.sample(prior, prefix, frames, seed=1, use_cache=False), repeat=args.repeat)

    assert np.array_equal(cached, full), "the two ways sampled different tokens"
    print(f"key/value cache:            {t_cached:8.3f} s")
    print(f"recompute the whole window: {t_full:8.3f} s")
    print("tokens identical: yes")
    print(f"ratio recompute / cache: {t_full / t_cached:.1f}x (goal >= 10x)")


if __name__ == "__main__":
    main()
