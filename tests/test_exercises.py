"""The exercises' reference solutions: each passes its self-check, a wrong answer fails it, and each
solution agrees with the musiclib function the lessons and the CLI use."""
import importlib

import numpy as np
import pytest
import torch

from musiclib import dsp, losses, metrics, signals
from musiclib.datasets import gruv
from musiclib.datasets.spectrogram import Normalizer
from musiclib.exercises import check, nb01, nb02, nb03, nb04, nb05, nb06, nb07, nb08, nb09, nb10, nb11, nb12, nb13, nb14, nb15
from musiclib.models import sample_lstm, vae

MODULES = [importlib.import_module(f"musiclib.exercises.nb{n:02d}") for n in range(1, 16)]
EXERCISES = [(m, k) for m in MODULES for k in range(1, 10) if hasattr(m, f"exercise_{k}")]


@pytest.mark.parametrize("module, k", EXERCISES, ids=[f"{m.__name__.split('.')[-1]}-{k}" for m, k in EXERCISES])
def test_reference_passes_and_a_wrong_answer_fails(module, k, capsys):
    solution, self_check = getattr(module, f"exercise_{k}"), getattr(module, f"check_{k}")
    assert self_check(solution) is True

    def off_by_a_little(*args):
        result = solution(*args)
        if isinstance(result, dict):
            return {key: value + 0.5 for key, value in result.items()}
        if isinstance(result, tuple):
            return tuple(np.asarray(value) + 0.5 for value in result)
        return np.asarray(result) * 1.1 + 0.5

    with pytest.raises(AssertionError, match="case 1"):
        self_check(off_by_a_little)


def test_not_attempted_is_reported_not_failed(capsys):
    def my_answer(*args):
        raise NotImplementedError

    assert nb06.check_2(my_answer) is False and nb06.check_2(None) is False
    assert "not attempted yet" in capsys.readouterr().out


def test_shape_mismatch_is_named():
    with pytest.raises(AssertionError, match="expected shape"):
        check(lambda x: np.zeros(3), lambda x: np.zeros(4), [(0,)])


def test_solutions_agree_with_the_library():
    rng = np.random.default_rng(0)
    for f in (15_000, 440, 30_000):
        assert nb01.exercise_1(f, 22_050) == signals.alias_frequency(f, 22_050)
    for bits in (8, 12, 16):
        assert abs(nb01.exercise_2(nb01.full_scale_sine(), bits) - signals.quantization_snr_db(bits)) < 0.3
    spectrum = np.fft.fft(rng.standard_normal(16))
    np.testing.assert_allclose(nb02.exercise_1(spectrum), dsp.idft(spectrum), atol=1e-10)
    assert nb03.exercise_1(44_100, 2048) == pytest.approx(dsp.time_frequency_resolution(44_100, 2048))
    x = rng.standard_normal(300)
    np.testing.assert_array_equal(np.asarray(nb03.exercise_3(x, 64, 16)).reshape(-1), np.asarray(dsp.frame(x, 64, 16)).reshape(-1))
    freqs = np.array([50.0, 1000.0, 8000.0])
    np.testing.assert_allclose(nb04.exercise_1(freqs), dsp.hz_to_mel(freqs, htk=True))
    a, b = rng.random((33, 7)), rng.random((33, 7))
    assert nb04.exercise_3(a, b) == pytest.approx(dsp.spectral_convergence(a, b))
    train_values, other_values = rng.normal(-5, 3, (40, 9)), rng.normal(-5, 3, (4, 9))
    np.testing.assert_allclose(nb05.exercise_1(train_values, other_values), Normalizer.fit(train_values).normalize(other_values), atol=1e-5)
    feats_a, feats_b = rng.normal(size=(300, 4)), rng.normal(1, 2, size=(200, 4))
    assert nb05.exercise_2(feats_a, feats_b) == pytest.approx(metrics.frechet_distance(feats_a, feats_b), rel=1e-4)
    train, generated, heldout = rng.normal(size=(40, 3)), rng.normal(size=(9, 3)), rng.normal(size=(11, 3))
    assert nb05.exercise_3(train, generated, heldout) == pytest.approx(metrics.memorization_ratio(train, generated, heldout))
    y = np.repeat(rng.normal(size=12), 64) + 0.01 * rng.normal(size=768)
    assert nb06.exercise_2(y, 64) == pytest.approx(gruv.boundary_click_ratio(y, 64), rel=1e-9)
    rows = np.lib.stride_tricks.sliding_window_view(np.sin(0.2 * np.arange(500)) + 0.1 * rng.normal(size=500), 4)
    np.testing.assert_allclose(nb07.exercise_1(rows), sample_lstm.linear_predictor(rows.astype(np.float32)), atol=1e-5)
    weight = rng.normal(size=(6, 9))
    assert nb08.exercise_3(weight) == pytest.approx(float(torch.linalg.matrix_norm(torch.from_numpy(weight), ord=2)), rel=1e-6)
    real, fake = rng.normal(size=4096), rng.normal(size=4096)
    library = losses.multi_resolution_stft_loss(torch.from_numpy(real)[None], torch.from_numpy(fake)[None], [(512, 128, 512)])
    assert nb09.exercise_2(real, fake, 512, 128) == pytest.approx(float(library), rel=1e-6)
    mu, log_var = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    posterior = torch.distributions.Normal(torch.from_numpy(mu), torch.from_numpy(np.exp(0.5 * log_var)))
    prior = torch.distributions.Normal(torch.zeros(5, 3, dtype=torch.float64), torch.ones(5, 3, dtype=torch.float64))
    np.testing.assert_allclose(nb10.exercise_1(mu, log_var), torch.distributions.kl_divergence(posterior, prior).sum(-1).numpy())
    labels = [{"pitch": 60, "instrument": "organ"}, {"pitch": 48, "instrument": "flute"}]
    vocabulary = {"pitches": [48, 60, 67], "instruments": ["flute", "organ"]}
    np.testing.assert_array_equal(nb11.exercise_1(labels, vocabulary["pitches"], vocabulary["instruments"]), vae.one_hot(labels, vocabulary))
    import librosa

    assert nb11.exercise_2(61.3) == pytest.approx(float(librosa.midi_to_hz(61.3)))
    from musiclib.models import token_transformer, vq

    quantizer = vq.VectorQuantizer(16, 3)
    vectors = torch.randn(1, 3, 10)
    np.testing.assert_array_equal(nb12.exercise_1(vectors[0].T.numpy(), quantizer.codebook.numpy()), quantizer.nearest(vectors)[0].numpy())
    tokens = rng.integers(0, 16, 200)
    assert nb12.exercise_2(tokens, 16) == pytest.approx(vq.usage(tokens, 16)["perplexity"])
    logits = rng.standard_normal(12)
    np.testing.assert_allclose(nb12.exercise_3(logits, 0.7, 5), token_transformer.sampling_probabilities(torch.from_numpy(logits)[None], 0.7, 5)[0].numpy())
    frames = rng.integers(0, 16, (7, 3))
    np.testing.assert_array_equal(nb12.exercise_4(frames, 16), token_transformer.delay(frames, 16))
    from musiclib.models import flow

    noise, data = rng.standard_normal((2, 6)), rng.standard_normal((2, 6))
    x_t, target = nb13.exercise_1(noise, data, 0.3)
    np.testing.assert_allclose(x_t, flow.interpolate(torch.from_numpy(noise), torch.from_numpy(data), torch.full((2,), 0.3, dtype=torch.float64)).numpy())
    np.testing.assert_allclose(target, data - noise)

    class Spin(torch.nn.Module):
        def forward(self, x, t):
            return torch.stack([-x[:, 1], x[:, 0]], dim=1) * (1 + t[:, None])

    start = rng.standard_normal((3, 2))
    one_step = flow.integrate(Spin(), torch.from_numpy(start), steps=1, solver="midpoint").numpy()
    np.testing.assert_allclose(nb13.exercise_2(lambda x, t: Spin()(torch.from_numpy(x), torch.full((len(x),), t)).numpy(), start, 0.0, 1.0),
                               one_step, rtol=1e-6)
    data_estimate, noise_estimate = nb13.exercise_3(x_t, target, 0.3)
    np.testing.assert_allclose(data_estimate, data)  # the true velocity gives back both ends exactly
    np.testing.assert_allclose(noise_estimate, noise)
    from musiclib import compare

    per_seed = [2.0, 4.0, 9.0]
    summary = compare.summarise([{"score": v} for v in per_seed])["score"]
    assert nb15.exercise_1(per_seed) == pytest.approx((summary["mean"], summary["sd"]))
    profile = rng.random(12)
    np.testing.assert_allclose(nb15.exercise_2(profile, metrics.MAJOR_KEY_PROFILE), metrics.key_correlations(profile)[:12])
    np.testing.assert_allclose(nb15.exercise_2(profile, metrics.MINOR_KEY_PROFILE), metrics.key_correlations(profile)[12:])
    clip = np.concatenate([0.3 * rng.standard_normal(11025), 1e-5 * rng.standard_normal(11025)]).astype(np.float32)
    assert nb15.exercise_3(librosa.feature.rms(y=clip, frame_length=2048, hop_length=512)[0]) == metrics.silent_share(clip[None])


def test_the_notes_solutions_agree_with_the_library_and_mir_eval():
    from musiclib import note_events, transcription
    from musiclib.models.token_transformer import longest_copied_ngram
    from musiclib.synth import Note

    rng = np.random.default_rng(14)
    tokens = note_events.encode([Note(0.3 * i, 0.3, 50 + int(rng.integers(0, 20))) for i in range(30)], 0.3)
    np.testing.assert_array_equal(nb14.exercise_1(tokens, 4, note_events.PITCH, note_events.DURATION), note_events.transpose(tokens, 4))
    for _ in range(5):
        reference = [Note(float(t), 0.2, int(p)) for t, p in zip(rng.uniform(0, 3, 20), rng.integers(60, 64, 20))]
        estimated = [Note(n.onset + float(rng.normal(0, 0.04)), 0.2, n.pitch + int(rng.random() < 0.2)) for n in reference]
        expected = transcription.note_scores(reference, estimated, 22050, 10.0)
        got = nb14.exercise_2([(n.pitch, n.onset) for n in reference], [(n.pitch, n.onset) for n in estimated])
        assert got == pytest.approx((expected["note_precision"], expected["note_recall"], expected["note_f1"]))
    reference = rng.integers(0, 3, (50, 3))
    sequence = np.concatenate([rng.integers(0, 3, (4, 3)), reference[5:12]])
    assert nb14.exercise_3(sequence, reference) == longest_copied_ngram([sequence], [reference])
