"""Helpers several test files share (pytest puts this folder on the import path)."""
import dataclasses

import numpy as np
import pytest
import torch

from musiclib import audio, cli, runs
from musiclib.models import Model, Settings


def snapshot(folder):
    """Every file under ``folder`` and its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def fails_cleanly(argv, capsys, expected, watched=()):
    """The command exits with status 2 and one line (no traceback) that says ``expected``; ``watched`` folders are unchanged."""
    before = [(folder, snapshot(folder)) for folder in watched]
    with pytest.raises(SystemExit) as exit_info:  # argparse errors exit; the others return 2
        raise SystemExit(cli.main(argv))
    assert exit_info.value.code == 2
    err = "\n".join(line for line in capsys.readouterr().err.splitlines() if line.strip() and "%|" not in line)  # not tqdm's bar
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert expected in err, err
    for folder, files in before:
        assert snapshot(folder) == files, f"{folder} changed"


def continues_where_the_prime_stops(run_dir, out, seconds: float = 2.0):
    """`generate --mode continue` writes the held-out prime, then exactly ``seconds`` of new audio."""
    path, prime_seconds = runs.generate(run_dir, seconds, out, mode="continue")
    y, sr = audio.load(path)
    prime = runs.heldout_audio(runs.open_dataset("chorales"), 1, prime_seconds)[0]
    assert len(y) == len(prime) + int(seconds * sr)
    np.testing.assert_allclose(y[: len(prime)], prime, atol=1e-4)  # the file plays the prime, then the new part


@dataclasses.dataclass(frozen=True)
class TinySettings(Settings):
    dropout: float = 0.2


class TinyModel(Model):
    """Eight numbers in, eight out, through a hidden layer (with dropout, so that training draws random numbers):
    it learns to reverse its input. Not registered; the Trainer's tests train it."""

    name, family, description = "tiny", "baseline", "reverses eight numbers"
    Settings = TinySettings

    def __init__(self, settings=TinySettings(), audio=None, hidden: int = 16):
        super().__init__(settings, audio)
        self.net = torch.nn.Sequential(torch.nn.Linear(8, hidden), torch.nn.Dropout(settings.dropout), torch.nn.Linear(hidden, 8))

    def loss(self, batch, phase: str = ""):
        return torch.mean((self.net(batch) - batch.flip(1)) ** 2)
