"""Training with several processes (DistributedDataParallel over gloo) gives the weights of one process.

Two processes are started from here with a file rendezvous (``tests/distributed_worker.py``), as
``torchrun`` would start them; each runs :func:`musiclib.runs.train` on the bundled fast chorales.
Their weights are compared with a one-process run at the same global batch: the GRUV LSTM (no
BatchNorm; a running residual in a buffer), the MelGAN vocoder (adversarial: a warm-up, then
discriminator and generator in turn, with a loss that is a ratio over the whole batch) and the note
transformer (built on a frozen transcriber; a loss over the tokens that are not padding, whose
number differs between the ranks' slices). The note models' shared transcriber is trained once by
both processes together.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from musiclib import AudioConfig, models, runs
from musiclib.training import load_checkpoint
from musiclib.utils import set_seed

WORKER = Path(__file__).with_name("distributed_worker.py")
STEPS = 4
MELGAN = {"warmup_steps": 2}  # two steps of warm-up, then two of the adversarial game
NOTES = {"dropout": 0.0}  # dropout masks are drawn per rank
SHARED_TRANSCRIBER = {"transcriber_steps": 5}  # a shared run no other test asks for
MODELS = {"gruv": ("gruv", None), "melgan": ("melgan", MELGAN), "notes": ("note-transformer", NOTES)}
TOLERANCE = 1e-5  # float sums in another order (a mean of two half-batch means)
UPDATE_TOLERANCE = 0.02


def start_processes(world_size: int, jobs: list[dict], folder: Path) -> Path:
    """Run the jobs in ``world_size`` processes joined by a file rendezvous; return the folder of their dumps."""
    dump = folder / "dump"
    dump.mkdir()
    (folder / "jobs.json").write_text(json.dumps(jobs))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, str(WORKER), str(folder / "rendezvous"), str(rank), str(world_size),
                                 str(folder / "jobs.json"), str(dump)], env=env, stderr=subprocess.PIPE, text=True)
               for rank in range(world_size)]
    errors = [worker.communicate(timeout=600)[1] for worker in workers]
    for rank, (worker, error) in enumerate(zip(workers, errors)):
        assert worker.returncode == 0, f"rank {rank} failed:\n{error[-3000:]}"
    return dump


def weights(run_dir: Path) -> dict:
    return load_checkpoint(run_dir / "checkpoint.pt")["model"]


def assert_same_training(two: dict, one: dict, model_name: str, overrides: dict | None = None, run: Path | None = None) -> None:
    """``two`` trained as ``one`` did, to float tolerance: the weights moved from their common start by the same
    update, but for ``UPDATE_TOLERANCE`` of its size; the buffers equal to ``TOLERANCE``.

    Half-batch kernels sum in another order than whole-batch ones (relative gradient differences of 1e-4 in
    float32, 1e-13 in float64), and Adam's first steps move a weight by its step size whatever the size of its
    gradient, so a gradient near zero can step the other way. Training on another batch moves the weights
    about half as far again as the update (MelGAN, 4 steps: 0.51 of it). A model built on another starts as the
    one-process ``run`` started: on the upstream run it recorded.
    """
    model_class = models.get(model_name)
    settings, upstream = model_class.Settings().replace(**(overrides or {})), None
    if model_class.upstream is not None:
        settings = model_class.Settings.from_dict(runs.read_config(run)["model_config"])
        _, upstream, _, _ = runs.load(getattr(settings, f"{model_class.upstream.setting}_run"))
    set_seed(0)
    initial = dict(runs.build(model_class, settings, AudioConfig(), upstream).named_parameters())
    assert two.keys() == one.keys()
    difference = torch.cat([(two[key] - one[key]).flatten() for key in initial]).norm()
    update = torch.cat([(one[key] - initial[key].detach()).flatten() for key in initial]).norm()
    assert difference <= UPDATE_TOLERANCE * update, (float(difference), float(update))
    for key in two.keys() - initial.keys():
        assert torch.allclose(two[key].float(), one[key].float(), rtol=TOLERANCE, atol=TOLERANCE), key


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """One session of two processes for every test here: four runs, and the one-process runs to compare with."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MUSICLIB_FAST", "1")
    folder = tmp_path_factory.mktemp("distributed")
    runs.open_dataset("chorales")  # built once here, before the processes start
    # One process trains half of the run that two processes finish.
    runs.train("gruv", "chorales", folder / "one_then_two", steps=STEPS // 2, progress=False)
    # The one-process note run first: its shared transcriber (the CLI's) is then in the cache for both processes.
    runs.train("note-transformer", "chorales", folder / "notes_one", steps=STEPS, overrides=NOTES, progress=False)
    jobs = [{"name": "gruv", "model": "gruv", "out": str(folder / "gruv"), "steps": STEPS},
            {"name": "melgan", "model": "melgan", "out": str(folder / "melgan"), "steps": STEPS, "set": MELGAN},
            {"name": "two_then_one", "model": "gruv", "out": str(folder / "two_then_one"), "steps": STEPS // 2},
            {"name": "one_then_two", "model": "gruv", "out": str(folder / "one_then_two"), "steps": STEPS},
            {"name": "stft", "model": "stft-loss"},
            {"name": "dcgan", "model": "dcgan", "out": str(folder / "dcgan"), "steps": 2},
            {"name": "notes", "model": "note-transformer", "out": str(folder / "notes"), "steps": STEPS, "set": NOTES},
            {"name": "shared", "model": "shared-transcriber", "set": SHARED_TRANSCRIBER}]
    start_processes(2, jobs, folder)
    runs.train("gruv", "chorales", folder / "gruv_one", steps=STEPS, progress=False)
    runs.train("melgan", "chorales", folder / "melgan_one", steps=STEPS, overrides=MELGAN, progress=False)
    yield folder
    shutil.rmtree(json.loads((folder / "dump" / "shared_rank0.json").read_text()), ignore_errors=True)
    mp.undo()


def test_the_ranks_train_the_shared_transcriber_together_once(runs_dir):
    run = json.loads((runs_dir / "dump" / "shared_rank0.json").read_text())
    assert json.loads((runs_dir / "dump" / "shared_rank1.json").read_text()) == run
    assert (Path(run) / "complete").exists() and runs.history(run)[-1]["step"] == SHARED_TRANSCRIBER["transcriber_steps"]


@pytest.mark.parametrize("name", ["gruv", "melgan", "notes"])
def test_two_processes_train_the_weights_one_process_trains(runs_dir, name):
    rank0 = torch.load(runs_dir / "dump" / f"{name}_rank0.pt")
    rank1 = torch.load(runs_dir / "dump" / f"{name}_rank1.pt")
    for key in rank0:  # every rank holds the same weights and buffers
        assert torch.equal(rank0[key], rank1[key]), key
    assert_same_training(weights(runs_dir / name), weights(runs_dir / f"{name}_one"), *MODELS[name], run=runs_dir / f"{name}_one")
    one = runs.history(runs_dir / f"{name}_one")[-1]
    two = runs.history(runs_dir / name)[-1]  # the logged losses are the global batch's
    loss = "loss_generator" if name == "melgan" else "train_loss"
    assert two[loss] == pytest.approx(one[loss], rel=1e-4)


def test_a_gan_with_batchnorm_and_spectral_norm_keeps_every_rank_the_same(runs_dir):
    """DCGAN: BatchNorm in the generator, spectral norm (power-iteration vectors updated in every forward) in the
    critic, noise drawn per rank, two critic forwards before one backward. Every rank ends with the same weights and
    the same spectral-norm vectors; only BatchNorm's running statistics are each rank's own (of its slice)."""
    rank0 = torch.load(runs_dir / "dump" / "dcgan_rank0.pt")
    rank1 = torch.load(runs_dir / "dump" / "dcgan_rank1.pt")
    batchnorm = ("running_mean", "running_var", "num_batches_tracked")
    shared = [key for key in rank0 if not key.endswith(batchnorm)]
    assert any(key.endswith("._u") for key in shared) and len(shared) < len(rank0)
    for key in shared:
        assert torch.equal(rank0[key], rank1[key]), key


def test_a_checkpoint_of_two_processes_resumes_in_one(runs_dir):
    assert load_checkpoint(runs_dir / "two_then_one" / "checkpoint.pt")["step"] == STEPS // 2
    runs.train("gruv", "chorales", runs_dir / "two_then_one", steps=STEPS, progress=False)
    assert_same_training(weights(runs_dir / "two_then_one"), weights(runs_dir / "gruv_one"), "gruv")


def test_a_checkpoint_of_one_process_resumes_in_two(runs_dir):
    state = load_checkpoint(runs_dir / "one_then_two" / "checkpoint.pt")
    assert state["step"] == STEPS and len(state["rng_by_rank"]) == 2
    assert_same_training(weights(runs_dir / "one_then_two"), weights(runs_dir / "gruv_one"), "gruv")


def test_only_rank_zero_writes(runs_dir):
    for name in ("gruv", "melgan", "two_then_one", "one_then_two", "dcgan", "notes"):
        written = json.loads((runs_dir / "dump" / f"{name}_writes_rank0.json").read_text())
        assert any(path.endswith("checkpoint.pt") for path in written), written
        assert json.loads((runs_dir / "dump" / f"{name}_writes_rank1.json").read_text()) == []
    assert sorted(path.name for path in (runs_dir / "gruv").iterdir()) == ["checkpoint.pt", "config.json", "history.json", "samples"]


def test_a_loss_over_the_whole_batch_has_the_gradient_of_one_process(runs_dir):
    """The spectral convergence is a ratio of norms over the batch, not a mean over examples: its sums go over
    every rank (:func:`musiclib.distributed.global_sum`), so its gradient is the whole batch's (float64: exact)."""
    sys.path.insert(0, str(WORKER.parent))
    from distributed_worker import Gain, stft_loss_batch

    gain = Gain(stft_loss_batch()[0].shape[1])
    gain(*stft_loss_batch()).backward()
    for rank in range(2):
        two = torch.load(runs_dir / "dump" / f"stft_rank{rank}.pt")
        assert torch.allclose(two, gain.gain.grad, rtol=1e-9, atol=1e-15), float((two - gain.gain.grad).abs().max())


def test_nproc_trains_under_torchrun_like_one_process(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    command = [sys.executable, "-m", "musiclib", "train", "spectral-noise", "--steps", str(STEPS)]
    result = subprocess.run([*command, "--out", str(tmp_path / "two"), "--nproc", "2"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("trained spectral-noise into") == 1  # rank 0 alone reports
    runs.train("spectral-noise", "chorales", tmp_path / "one", steps=STEPS, progress=False)
    assert load_checkpoint(tmp_path / "two" / "checkpoint.pt")["step"] == STEPS
    assert_same_training(weights(tmp_path / "two"), weights(tmp_path / "one"), "spectral-noise")


@pytest.mark.parametrize("options, message", [
    (["--nproc", "3"], "gruv's batch of 16 examples does not split into 3 equal slices"),
    (["--nproc", "2", "--minutes", "1"], "--minutes plans a run in one process"),
])
def test_nproc_refuses_what_cannot_split_before_starting_processes(tmp_path, monkeypatch, options, message):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    result = subprocess.run([sys.executable, "-m", "musiclib", "train", "gruv", "--out", str(tmp_path / "run"), *options],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "starting" not in result.stdout and not (tmp_path / "run").exists()
