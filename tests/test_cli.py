"""Every user error of the command line: one line naming the problem and the fix, exit 2, nothing written."""
import os
import subprocess
import sys

import pytest

from musiclib import cli, models
from musiclib.models.spectral_noise import SpectralNoise

from helpers import fails_cleanly


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "noise"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUSICLIB_FAST", "1")
        assert cli.main(["train", "spectral-noise", "--out", str(run), "--steps", "4"]) == 0
    return run


@pytest.mark.parametrize("args,expected", [
    (["--steps", "0"], "--steps: must be at least 1"),
    (["--steps", "-3"], "--steps: must be at least 1"),
    (["--set", "[1, 2]"], "must be a JSON object"),
    (["--set", "{oops"], "not valid JSON"),
    (["--set", '{"hidden": 128}'], "has no setting 'hidden'; valid settings: batch_size"),
    (["--set", '{"learning_rate": "fast"}'], "'learning_rate' must be a number"),
    (["--set", '{"batch_size": 0}'], "batch_size must be a positive whole number"),
])
def test_train_refuses_bad_options_before_writing(tmp_path, capsys, args, expected):
    fails_cleanly(["train", "spectral-noise", "--out", str(tmp_path / "run"), *args], capsys, expected)
    assert not (tmp_path / "run").exists()


def test_resume_with_other_settings_is_refused_and_changes_nothing(trained, capsys, monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    fails_cleanly(["train", "spectral-noise", "--out", str(trained), "--set", '{"learning_rate": 0.1}'], capsys,
                   "resuming with other settings (learning_rate)", watched=[trained])
    fails_cleanly(["train", "spectral-noise", "--out", str(trained), "--seed", "1"], capsys, "(seed)", watched=[trained])
    fails_cleanly(["train", "spectral-noise", "--out", str(trained), "--data", "notes"], capsys, "(data)", watched=[trained])


@pytest.mark.parametrize("args,expected", [
    (["--out", "x.txt"], "--out x.txt: name the file with one of .wav"),
    (["--out", "noextension"], "name the file with one of .wav"),
    (["--out", "x.wav", "--seconds", "nan"], "--seconds: must be a positive number"),
    (["--out", "x.wav", "--seconds", "-1"], "--seconds: must be a positive number"),
])
def test_generate_refuses_bad_options_before_working(trained, tmp_path, capsys, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    fails_cleanly(["generate", str(trained), *args], capsys, expected, watched=[trained])
    assert not list(tmp_path.iterdir())


def test_evaluate_and_prepare_refuse_bad_numbers(trained, tmp_path, capsys):
    fails_cleanly(["evaluate", str(trained), "--n-clips", "-3"], capsys, "--n-clips: must be at least 1", watched=[trained])
    (tmp_path / "src").mkdir()
    for value in ("0", "-1", "nan"):
        fails_cleanly(["prepare", str(tmp_path / "src"), str(tmp_path / "out"), "--clip-seconds", value], capsys, "--clip-seconds")
    assert not (tmp_path / "out").exists()


def test_a_nan_loss_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MUSICLIB_FAST", "1")
    class NaNLoss(SpectralNoise):
        def loss(self, batch, phase=""):
            return super().loss(batch, phase) * float("nan")

    monkeypatch.setitem(models.REGISTRY, "spectral-noise", NaNLoss)
    fails_cleanly(["train", "spectral-noise", "--out", str(tmp_path / "run"), "--steps", "3"], capsys, "loss became nan at step 0; lower the learning rate")
    assert not (tmp_path / "run").exists()


def test_a_bundled_name_does_not_shadow_a_local_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "chorales").mkdir()
    fails_cleanly(["train", "spectral-noise", "--out", "run", "--data", "chorales"], capsys, "write ./chorales for the folder")
    assert not (tmp_path / "run").exists()


def test_help_imports_no_model_and_no_torch():
    code = "import sys; from musiclib import cli\ntry: cli.main(['--help'])\nexcept SystemExit: pass\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("False")


def test_train_help_names_every_bundled_set(capsys):
    from musiclib.datasets import bundled

    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(name in help_text for name in bundled.SETS) and "(default chorales)" in help_text


def test_resume_on_a_dataset_that_changed_under_the_same_name_is_refused(tmp_path, capsys, monkeypatch):
    import shutil

    import soundfile

    from musiclib import AudioConfig, signals
    from musiclib.datasets.prepare import prepare_folder

    monkeypatch.setenv("MUSICLIB_FAST", "1")

    def prepare(first_note):
        shutil.rmtree(tmp_path / "data", ignore_errors=True)
        for i in range(3):
            y = signals.chord(notes=(first_note + i, first_note + 4 + i), seconds=3.0, sample_rate=22050, seed=i)
            soundfile.write(tmp_path / "music" / f"song{i}.wav", y, 22050)
        prepare_folder(tmp_path / "music", tmp_path / "data", AudioConfig(), progress=False)

    (tmp_path / "music").mkdir()
    prepare(48)
    argv = ["train", "spectral-noise", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--steps", "2"]
    assert cli.main(argv) == 0
    prepare(55)  # same folder, other music
    fails_cleanly(argv[:-1] + ["4"], capsys, "has changed since this run started", watched=[tmp_path / "run"])


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory):
    """The demo run once at a few steps per model, over a run folder left by an older musiclib."""
    import json

    from musiclib.demo import run_demo

    out = tmp_path_factory.mktemp("demo") / "demo"
    stale = out / "runs" / "chorales" / "gruv" / "seed_0"
    stale.mkdir(parents=True)
    (stale / "config.json").write_text(json.dumps({"model": "gruv", "data": "/gone/chorales-v1-fast-22050"}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUSICLIB_FAST", "1")
        run_demo(out, steps=3, n_clips=8)  # `make demo` trains the gallery's models at their fast size
    return out


def test_demo_builds_a_gallery_page_over_a_demo_folder_left_by_an_older_musiclib(demo_page):
    import json
    import re

    import soundfile as sf

    from musiclib import models
    from musiclib.demo import GALLERY_CLIPS

    out = demo_page
    assert json.loads((out / "runs" / "chorales" / "gruv" / "seed_0" / "config.json").read_text())["data_fingerprint"], \
        "the stale run was trained afresh"
    page = (out / "index.html").read_text()
    assert "http" not in page, "the page is self-contained"
    sources = re.findall(r'<audio controls preload="metadata" src="([^"]+)"', page)
    pictures = re.findall(r'<img src="([^"]+)"', page)
    gallery = [spec.name for spec in models.gallery_models()]
    assert len(sources) == len(pictures) == GALLERY_CLIPS * (len(gallery) + 2), "three clips per model, real music and noise"
    for source in sources:
        info = sf.info(out / source)
        assert info.duration > 0.5 and info.samplerate == 22050
    assert all((out / picture).stat().st_size > 0 for picture in pictures)
    assert set(models.FAMILIES) - {"vocoder"} == {models.get(name).family for name in gallery}, "every family that makes music"
    for name in gallery:
        assert f"<h2>{name}</h2>" in page and f"| {name} |" in (out / "results.md").read_text()


BROWSER_CHECK = """<script>
window.addEventListener('load', () => {
  const audios = [...document.querySelectorAll('audio')];
  const ready = a => a.readyState >= 1 ? Promise.resolve()
    : new Promise(done => { a.addEventListener('loadedmetadata', done); a.addEventListener('error', done); a.load(); });
  Promise.all(audios.map(ready)).then(() => {
    const report = document.createElement('pre');
    report.id = 'browser-check';
    report.textContent = JSON.stringify({durations: audios.map(a => a.duration), errors: audios.map(a => a.error ? a.error.code : 0),
                                         images: [...document.images].map(image => image.naturalWidth)});
    document.body.appendChild(report);
  });
});
</script></body>"""


def test_the_demo_page_plays_in_a_real_browser(demo_page):
    """Headless Chromium opens the page: every player loads its audio with a duration, every picture loads,
    the page logs nothing to the console, and a screenshot is written beside the page."""
    import html
    import json
    import re
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium); .ci/run installs it where it can")
    checked = demo_page / "_browser_check.html"
    checked.write_text((demo_page / "index.html").read_text().replace("</body>", BROWSER_CHECK))
    flags = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
             "--virtual-time-budget=20000", "--enable-logging=stderr", "--v=0"]
    result = subprocess.run(flags + ["--dump-dom", checked.as_uri()], capture_output=True, text=True, timeout=120)
    match = re.search(r'<pre id="browser-check">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the page's check never finished: {result.stderr[-2000:]}"
    report = json.loads(html.unescape(match.group(1)))
    assert report["durations"] and all(d is not None and d > 0.5 for d in report["durations"]) and not any(report["errors"]), report
    assert report["images"] and all(width > 0 for width in report["images"]), report
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert not console, console
    subprocess.run(flags + ["--window-size=1400,3000", f"--screenshot={demo_page / 'index.png'}", (demo_page / "index.html").as_uri()],
                   capture_output=True, timeout=120)
    assert (demo_page / "index.png").stat().st_size > 10_000


def test_a_progress_bar_written_to_a_pipe_updates_every_few_seconds_not_every_step(tmp_path):
    """A log of a long run keeps a line every few seconds: 300 steps write a handful of updates, not 300."""
    result = subprocess.run([sys.executable, "-m", "musiclib", "train", "spectral-noise", "--out", str(tmp_path / "run"),
                             "--steps", "300"], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MUSICLIB_FAST": "1"})
    assert result.returncode == 0, result.stderr
    updates = result.stderr.count("training:")
    assert 1 <= updates <= 10, result.stderr[-2000:]



def test_an_old_run_folder_loads_or_is_refused_in_one_line(trained, tmp_path, capsys):
    import shutil

    import torch

    old = tmp_path / "old"
    shutil.copytree(trained, old)
    state = torch.load(old / "checkpoint.pt", weights_only=True)
    del state["model_config"]["optimizer"]  # a run from before a setting existed: it takes the setting's default
    torch.save(state, old / "checkpoint.pt")
    assert cli.main(["generate", str(old), "--seconds", "0.5", "--out", str(tmp_path / "a.wav")]) == 0
    state["model_config"]["version"] = "fixed"  # a setting the model no longer has
    torch.save(state, old / "checkpoint.pt")
    fails_cleanly(["generate", str(old), "--seconds", "0.5", "--out", str(tmp_path / "b.wav")], capsys,
                  "its settings do not fit the current spectral-noise model (trained by an older musiclib?); retrain it")
    assert not (tmp_path / "b.wav").exists()
