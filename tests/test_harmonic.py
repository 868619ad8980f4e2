"""Harmonic-plus-noise synthesis: the oscillator bank plays exact, continuous pitch; the noise takes the shape it is given."""
import numpy as np
import torch

from musiclib import harmonic

SR, HOP = 16000, 64


def test_upsampling_is_linear_between_frames_and_holds_the_last():
    controls = torch.tensor([[0.0, 1.0, 3.0]])
    up = harmonic.upsample(controls, 4, 12)
    np.testing.assert_allclose(up[0].numpy(), [0, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3, 3, 3])


def test_one_harmonic_is_a_sine_and_a_glide_integrates_its_frequency():
    n = SR // 2
    f0 = torch.full((1, 1, n // HOP + 1), 440.0, dtype=torch.float64)
    amplitudes = torch.zeros(1, 1, 3, f0.shape[-1], dtype=torch.float64)
    amplitudes[:, :, 0] = 0.5
    t = np.arange(1, n + 1) / SR  # the phase sums the frequency up to and including each sample
    np.testing.assert_allclose(harmonic.oscillator_bank(f0, amplitudes, SR, HOP, n)[0].numpy(), 0.5 * np.sin(2 * np.pi * 440 * t), atol=1e-9)

    glide = torch.linspace(220, 440, f0.shape[-1], dtype=torch.float64)[None, None]
    frequency = harmonic.upsample(glide, HOP, n)[0, 0].numpy()
    expected = 0.5 * np.sin(2 * np.pi * np.cumsum(frequency) / SR)
    np.testing.assert_allclose(harmonic.oscillator_bank(glide, amplitudes, SR, HOP, n)[0].numpy(), expected, atol=1e-9)


def test_voices_add_and_harmonics_above_nyquist_are_silent():
    n = 4096
    frames = n // HOP + 1
    f0 = torch.tensor([[[3000.0] * frames, [500.0] * frames]])
    amplitudes = torch.ones(1, 2, 4, frames)  # the first voice's harmonics 3 and 4 (9 and 12 kHz) lie above 8 kHz
    spectrum = np.abs(np.fft.rfft(harmonic.oscillator_bank(f0, amplitudes, SR, HOP, n)[0].numpy() * np.hanning(n)))
    hz = np.fft.rfftfreq(n, 1 / SR)
    peaks = sorted(hz[np.argsort(spectrum)[-24:]].round(-2).astype(int).tolist())
    assert set(peaks) == {500, 1000, 1500, 2000, 3000, 6000}, peaks


def test_noise_takes_the_band_shape_it_is_given_and_gradients_reach_it():
    n, bands = SR, 16
    magnitudes = torch.zeros(1, n // HOP + 1, bands, requires_grad=False)
    magnitudes[..., 4] = 1.0  # a triangle over bands 3-5: centred at 2133 Hz, 533 Hz to each side
    y = harmonic.filtered_noise(magnitudes, HOP, n, torch.Generator().manual_seed(0))[0].numpy()
    spectrum = np.abs(np.fft.rfft(y)) ** 2
    hz = np.fft.rfftfreq(n, 1 / SR)
    centre = 4 * (SR / 2) / (bands - 1)
    inside = spectrum[np.abs(hz - centre) < 400].mean()
    outside = spectrum[np.abs(hz - centre) > 1200].mean()
    assert inside > 1000 * outside
    silent = harmonic.filtered_noise(torch.zeros(1, 10, bands), HOP, 640)
    assert float(silent.abs().max()) == 0.0

    shape = torch.rand(2, 20, bands, requires_grad=True)
    harmonic.filtered_noise(shape, HOP, 1280, torch.Generator().manual_seed(1)).pow(2).sum().backward()
    assert shape.grad is not None and float(shape.grad.abs().sum()) > 0


def test_notes_take_the_first_free_voice_until_their_release_ends():
    from musiclib.synth import Note

    hop, sr = 100, 1000  # ten frames a second
    notes = [Note(0.0, 0.5, 69, 0.8), Note(0.2, 0.5, 72, 0.5), Note(0.6, 0.3, 76, 0.6),  # 76 waits for 69's release (0.6 s)
             Note(0.65, 0.2, 60), Note(0.65, 0.2, 62)]  # both voices busy at 0.65 s: these two are left out
    controls = harmonic.voice_controls(notes, 12, sr, hop, n_voices=2, release=0.1)
    assert controls.dropped == 2  # voice 0 plays 76, voice 1 releases 72 until 0.8 s
    np.testing.assert_allclose(controls.f0[0, :6], 440.0)
    np.testing.assert_allclose(controls.pitch[0], [69] * 6 + [76] * 4 + [0, 0])
    np.testing.assert_allclose(controls.pitch[1], [0, 0] + [72] * 6 + [0] * 4)
    np.testing.assert_allclose(controls.age[0, :6], np.arange(6) / 10, atol=1e-6)
    np.testing.assert_allclose(controls.remaining[0, 4:6], [0.1, 0.0], atol=1e-6)  # the end, then the release
    assert controls.sounding.sum() == 6 + 4 + 6 and controls.velocity[1, 3] == np.float32(0.5)


def test_the_control_network_silences_silent_voices_and_learns_through_the_sound():
    torch.manual_seed(0)
    net = harmonic.ControlNetwork(n_harmonics=8, n_bands=6, hidden=16)
    pitch = torch.tensor([[[60.0] * 5 + [0.0] * 5, [0.0] * 10]])  # voice 0 plays for 5 frames, voice 1 never
    age = torch.arange(10.0).repeat(1, 2, 1) * 0.01 * (pitch > 0)
    features = harmonic.ControlNetwork.features(pitch, age, torch.full_like(age, 0.5) * (pitch > 0), torch.full_like(age, 0.8) * (pitch > 0))
    amplitudes, bands = net(features)
    assert amplitudes.shape == (1, 2, 8, 10) and bands.shape == (1, 10, 6)
    played = amplitudes.detach()
    assert float(played[0, 1].abs().max()) == 0 and float(played[0, 0, :, 5:].abs().max()) == 0
    assert float(played[0, 0, :, :5].min()) > 0
    y = harmonic.oscillator_bank(440.0 * 2 ** ((pitch - 69) / 12) * (pitch > 0), amplitudes, SR, HOP, 9 * HOP) + harmonic.filtered_noise(bands, HOP, 9 * HOP)
    y.pow(2).sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in net.voice.parameters())
