"""The command line: bad input gives one clear line and exit 2; nothing half-written is left."""

import numpy as np
import pytest
import soundfile as sf

from sepipe import extras
from sepipe.cli import main


def _run(capsys, *argv):
    code = main(["-q", *argv])
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("data", "train", "convert", "evaluate", "run"):
        assert command in out


@pytest.mark.parametrize("argv, extra, missing", [
    (["train", "x.yaml"], "train", "tensorflow"),
    (["convert", "x.yaml"], "train", "soundfile"),
    (["evaluate", "x.yaml"], "eval", "pesq"),
    (["report", "x.yaml"], "report", "matplotlib"),
    (["run", "x.yaml"], "report", "matplotlib"),
    (["data", "build", "x.yaml"], "data", "G722"),
    (["verify-bundle", "b.zip"], "tflm", "tflite_micro"),
])
def test_a_command_without_its_extra_is_one_line_naming_the_extra(monkeypatch, capsys, argv, extra, missing):
    """Checked before the command does any work (the YAML does not even exist)."""
    found = extras.find_spec
    monkeypatch.setattr(extras, "find_spec", lambda name: None if name == missing else found(name))
    code, err = _run(capsys, *argv)
    command = "sepipe " + " ".join(argv[:-1])
    distribution = extras.MODULE_EXTRAS[missing][1]
    assert code == 2 and err == [f"sepipe: error: '{command}' needs the '{extra}' extra "
                                 f"({distribution} is not installed): pip install 'sepipe[{extra}]'"]


def test_an_optional_module_missing_while_running_names_its_extra(monkeypatch, capsys):
    def needs_ray(args):
        raise ModuleNotFoundError("No module named 'ray'", name="ray")

    monkeypatch.setattr("sepipe.cli.deploy._budget_command", needs_ray)
    code, err = _run(capsys, "budget", "check", "runs/demo")
    assert code == 2 and err == ["sepipe: error: 'sepipe budget check' needs the 'ray' extra (ray is not installed): "
                                 "pip install 'sepipe[ray]'"]


def test_a_missing_module_that_is_no_extra_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise ModuleNotFoundError("No module named 'sepipe.nothing'", name="sepipe.nothing")

    monkeypatch.setattr("sepipe.cli.deploy._budget_command", broken)
    with pytest.raises(ModuleNotFoundError):
        main(["-q", "budget", "check", "runs/demo"])


@pytest.mark.parametrize("yaml_text, fragment", [
    ("train:\n  epochz: 3\n", "option 'train.epochz'"),
    ("train:\n  epochs: three\n", "option 'train.epochs' = 'three'"),
    ("model:\n  rnn_units: -4\n", "option 'model.rnn_units' = -4"),
    ("train: [epochs: 3\n", "not valid YAML"),
])
def test_bad_yaml_is_one_line_and_exit_2(tmp_path, capsys, yaml_text, fragment):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml_text)
    code, err = _run(capsys, "train", str(path))
    assert code == 2 and len(err) == 1
    assert "exp.yaml" in err[0] and fragment in err[0]


def test_missing_dataset_names_the_folder_and_the_command(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(f"data:\n  cache_dir: {tmp_path / 'empty_cache'}\n")
    code, err = _run(capsys, "train", str(path))
    assert code == 2 and len(err) == 1
    assert "empty_cache" in err[0] and "sepipe data build" in err[0]


def _voicebank(root, speech, rate=16000):
    for split in ("train", "test"):
        for kind in ("clean", "noisy"):
            folder = root / f"{kind}_{split}set_wav"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(3):
                sf.write(folder / f"p{226 + i}_00{i}.wav", speech, rate)


@pytest.mark.parametrize("damage, fragment", [
    ("rate", "8000 Hz"),
    ("empty", "empty"),
    ("garbage", "unreadable"),
])
def test_bad_wav_in_a_corpus_is_named_and_no_dataset_is_left(tmp_path, capsys, small_dataset, damage, fragment):
    corpus = tmp_path / "vb"
    _voicebank(corpus, small_dataset.pairs("test", limit=1)[0].clean[:16000])
    bad = corpus / "noisy_testset_wav" / "p227_001.wav"
    if damage == "rate":
        sf.write(bad, np.zeros(8000, np.float32) + 0.1, 8000)
    elif damage == "empty":
        sf.write(bad, np.zeros(0, np.float32), 16000)
    else:
        bad.write_bytes(b"RIFF....not a wave file at all")
    path = tmp_path / "exp.yaml"
    path.write_text(f"data:\n  source: voicebank\n  root: {corpus}\n  cache_dir: {tmp_path / 'cache'}\n")
    code, err = _run(capsys, "data", "build", str(path))
    assert code == 2 and len(err) == 1, err
    assert "p227_001.wav" in err[0] and fragment in err[0]
    assert not list((tmp_path / "cache").rglob("manifest.json"))


def test_pipeline_errors_cross_process_boundaries_with_their_type_and_fields():
    import pickle

    from sepipe.errors import ConfigError, InputFileError, MissingArtifactError, ToolError

    for error in (ConfigError("x.yaml", "train.epochs", 0, "an integer >= 1"), InputFileError("a.wav", "not 16 kHz"),
                  MissingArtifactError("runs/x", "train first"), ToolError("vela", "exit code 1")):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error) and back.__dict__ == error.__dict__
