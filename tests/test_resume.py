"""Resuming a run: random-number states on any device, a damaged checkpoint, and a run killed mid-way."""
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

from musiclib import AudioConfig
from musiclib.training import Trainer, TrainConfig, load_checkpoint

from helpers import TinyModel


def _trainer(run_dir, steps, device="cpu"):
    torch.manual_seed(0)
    data = np.random.default_rng(0).standard_normal((37, 8)).astype(np.float32)
    config = TrainConfig(steps=steps, batch_size=8, learning_rate=1e-2, seed=3, checkpoint_every=5, progress=False, device=device)
    return Trainer(TinyModel(), data, run_dir, config, AudioConfig(), {"kind": "tiny"})


@pytest.mark.filterwarnings("ignore:for .*copying from a non-meta parameter")
def test_resume_restores_the_rng_state_on_a_non_cpu_device(tmp_path):
    _trainer(tmp_path, 5).fit()
    saved = load_checkpoint(tmp_path / "checkpoint.pt")["torch_rng"]
    assert saved.device.type == "cpu" and saved.dtype == torch.uint8
    # A checkpoint loaded for another device must still give the CPU generator a CPU byte tensor.
    torch.manual_seed(123)
    trainer = _trainer(tmp_path, 10, device="meta")
    assert trainer.resume() and trainer.step == 5
    assert torch.equal(torch.get_rng_state(), saved)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resume_on_cuda_gives_the_weights_of_a_straight_run(tmp_path):
    straight = _trainer(tmp_path / "straight", 10, device="cuda")
    straight.fit()
    _trainer(tmp_path / "resumed", 5, device="cuda").fit()
    state = load_checkpoint(tmp_path / "resumed" / "checkpoint.pt")
    assert state["cuda_rng"] and all(s.device.type == "cpu" for s in state["cuda_rng"])
    resumed = _trainer(tmp_path / "resumed", 10, device="cuda")
    resumed.fit()
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_damaged_checkpoint_is_named_in_the_error(tmp_path):
    _trainer(tmp_path, 5).fit()
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="checkpoint.pt: not a readable checkpoint"):
        _trainer(tmp_path, 10).fit()


KILLABLE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np, torch
    from musiclib import AudioConfig, training

    run_dir, steps, slow_save = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
    if slow_save:  # make every checkpoint write take long enough to be killed inside it
        real_save, writes = torch.save, []
        def save(state, path, *args, **kwargs):
            real_save(state, path, *args, **kwargs)
            writes.append(path)
            (Path(path).parent / f"written.{len(writes)}").touch()  # the bytes are out, the rename is not yet done
            time.sleep(0.5)
        training.torch.save = save
    from musiclib.models import Model, Settings

    class Reverser(Model):
        name, family, description = "reverser", "baseline", "reverses eight numbers"

        def __init__(self):
            super().__init__(Settings(), AudioConfig())
            self.net = torch.nn.Sequential(torch.nn.Linear(8, 64), torch.nn.Tanh(), torch.nn.Linear(64, 8))

        def loss(self, batch, phase=""):
            return torch.mean((self.net(batch) - batch.flip(1)) ** 2)

    torch.manual_seed(0)
    model = Reverser()
    data = np.random.default_rng(0).standard_normal((53, 8)).astype(np.float32)
    config = training.TrainConfig(steps=steps, batch_size=8, learning_rate=1e-2, seed=1, checkpoint_every=7,
                                  progress=False, device="cpu")
    training.Trainer(model, data, run_dir, config, AudioConfig(), {}).fit()
    print("done")
""")


def _run(script, run_dir, steps, slow_save=False, kill_when=None):
    process = subprocess.Popen([sys.executable, str(script), str(run_dir), str(steps), "1" if slow_save else "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_when is None:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        return
    deadline = time.time() + 60
    while not kill_when() and process.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.mark.parametrize("where", ["between checkpoints", "inside a checkpoint write"])
def test_sigkill_then_resume_gives_the_weights_of_a_straight_run(tmp_path, where):
    script = tmp_path / "killable.py"
    script.write_text(KILLABLE)
    _run(script, tmp_path / "straight", 60)
    run_dir = tmp_path / "killed"
    checkpoint = run_dir / "checkpoint.pt"
    if where == "between checkpoints":
        _run(script, run_dir, 60, kill_when=lambda: checkpoint.exists())
    else:  # while the second checkpoint's temporary file is written and not yet renamed into place
        _run(script, run_dir, 60, slow_save=True, kill_when=lambda: (run_dir / "written.2").exists())
        assert (run_dir / ".checkpoint.pt.tmp").exists()
    assert checkpoint.exists(), "killed before any checkpoint; the test did not exercise a resume"
    killed_at = load_checkpoint(checkpoint)["step"]
    assert killed_at < 60
    _run(script, run_dir, 60)
    straight, resumed = (load_checkpoint(d / "checkpoint.pt")["model"] for d in (tmp_path / "straight", run_dir))
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
