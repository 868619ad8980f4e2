"""musiclib's STFT, mel spectrogram and Griffin-Lim against librosa on 60 s of audio at 22,050 Hz.

Prints time ratios measured in this run (ratio > 1 means musiclib is faster), after checking that
both produce the same outputs. Goals: STFT and mel no slower than librosa; Griffin-Lim at equal
spectral convergence at least 2x faster than librosa.griffinlim.

Usage: python benchmarks/dsp.py [--seconds 60] [--repeat 5]
"""
import argparse

import librosa
import numpy as np

from musiclib import dsp, signals
from timing import best_time


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--gl-iters", type=int, default=32)
    args = parser.parse_args()

    sr, n_fft, hop = 22050, 1024, 256
    notes = [(48, 52, 55), (50, 53, 57), (43, 47, 50, 53), (48, 52, 55, 60)]
    y = np.concatenate([signals.chord(n, seconds=args.seconds / len(notes), sample_rate=sr, seed=i) for i, n in enumerate(notes)])
    print(f"signal: {len(y) / sr:.0f} s at {sr} Hz, n_fft {n_fft}, hop {hop}")
    rows = []

    t_ours, S_ours = best_time(lambda: dsp.stft(y, n_fft=n_fft, hop_length=hop), args.repeat)
    t_ref, S_ref = best_time(lambda: librosa.stft(y, n_fft=n_fft, hop_length=hop, center=True, pad_mode="constant"), args.repeat)
    assert np.allclose(S_ours, S_ref, atol=1e-3)
    rows.append(("STFT", t_ours, t_ref, "max |diff| %.1e" % np.max(np.abs(S_ours - S_ref))))

    t_ours, M_ours = best_time(lambda: dsp.mel_spectrogram(y, sr, n_fft=n_fft, hop_length=hop, n_mels=80), args.repeat)
    t_ref, M_ref = best_time(
        lambda: librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=80, htk=False, norm="slaney", center=True, pad_mode="constant"),
        args.repeat,
    )
    assert np.allclose(M_ours, M_ref, rtol=1e-3, atol=1e-4 * M_ref.max())
    rows.append(("mel spectrogram", t_ours, t_ref, "rel. diff %.1e" % (np.abs(M_ours - M_ref).max() / M_ref.max())))

    mag = np.abs(S_ref)

    def convergence(signal):
        return dsp.spectral_convergence(mag, np.abs(dsp.stft(signal, n_fft=n_fft, hop_length=hop)))

    gl_repeat = max(1, args.repeat // 2)
    t_ours, g_ours = best_time(lambda: dsp.griffin_lim(mag, n_iter=args.gl_iters, momentum=0.99, hop_length=hop, length=len(y)), gl_repeat)
    t_ref, g_ref = best_time(
        lambda: librosa.griffinlim(mag, n_iter=args.gl_iters, momentum=0.99, hop_length=hop, n_fft=n_fft, length=len(y), random_state=0),
        gl_repeat,
    )
    sc_ours, sc_ref = convergence(g_ours), convergence(g_ref)
    rows.append((f"Griffin-Lim {args.gl_iters}", t_ours, t_ref, f"spectral convergence {sc_ours:.3f} vs {sc_ref:.3f}"))

    print(f"{'operation':<18}{'musiclib (s)':>14}{'librosa (s)':>14}{'speed-up':>10}  check")
    for name, ours, ref, note in rows:
        print(f"{name:<18}{ours:>14.4f}{ref:>14.4f}{ref / ours:>9.2f}x  {note}")


if __name__ == "__main__":
    main()
