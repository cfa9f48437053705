"""Score any streaming model on any corpus (`sepipe evaluate --model ...`).

The pairs come from two folders paired by file name, a CSV list of noisy,clean paths, or a corpus
folder in a layout the dataset builders read (VoiceBank-DEMAND's testset, a DNS-Challenge test folder:
`sepipe.data.corpus` pairs them). Every file's header is checked before the model loads and nothing is
written until every file is scored, so a bad file (`sepipe.enhance.probe_input`, the sample checks of
`read_blocks`) or a non-contract model (`sepipe.enhance.load_model`) leaves no partial output.

Each noisy file is streamed hop by hop exactly as `sepipe enhance` does (`StreamEnhancer`, states carried
from block to block), which equals the experiment's one-shot evaluation path to float rounding; the
outputs and the baselines are scored by the experiment's `Scorer` and tabulated as its quality table
(`quality_table`), so the figures match `sepipe evaluate EXP.yaml` on the same files.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sepipe.errors import ConfigError, InputFileError

log = logging.getLogger(__name__)

BASELINES = ("noisy", "rnnoise")
PAIR_LAYOUT = "expected a noisy and a clean folder whose .wav files are paired by name"
LIST_LAYOUT = "expected a CSV of noisy,clean paths (relative to the CSV's folder), one pair a line"
WRITE_AUDIO = 3               # files whose audio is kept and embedded, as the experiment's evaluate.write_audio
MAX_LIST_BYTES = 64 << 20      # a list of a million pairs is ~100 MB; anything bigger is not a list


@dataclass(frozen=True)
class CorpusPair:
    name: str
    noisy: Path
    clean: Path


@dataclass(frozen=True)
class CorpusResult:
    rows: list[dict]          # the quality table: one row per system
    per_file: list[dict]      # one per (system, file)
    outputs: list[Path]       # the files written


# --------------------------------------------------------------------------- the pairs

def corpus_pairs(noisy: Path | None, clean: Path | None, listing: Path | None,
                 corpus: Path | None) -> list[CorpusPair]:
    """The pairs named by exactly one of --noisy/--clean, --list and --corpus; nothing is read but names."""
    given = [name for name, value in (("--noisy/--clean", noisy or clean), ("--list", listing), ("--corpus", corpus))
             if value is not None]
    if len(given) != 1:
        raise ConfigError("--noisy", "corpus", " and ".join(given) or None,
                          "exactly one of --noisy DIR --clean DIR, --list CSV or --corpus DIR")
    if listing is not None:
        return _listed_pairs(Path(listing))
    if corpus is not None:
        return _corpus_folder_pairs(Path(corpus))
    from sepipe.data.corpus import pair_by_name

    for option, folder in (("--noisy", noisy), ("--clean", clean)):
        if folder is None:
            raise ConfigError(option, option.lstrip("-"), None, f"a folder of .wav files (with {option} the other "
                                                                "of --noisy DIR --clean DIR)")
        _need_folder(Path(folder), PAIR_LAYOUT)
    return [CorpusPair(*found) for found in pair_by_name(Path(noisy), Path(clean), PAIR_LAYOUT)]


def _need_folder(folder: Path, layout: str) -> None:
    if not folder.is_dir():
        raise InputFileError(folder, f"{'not a folder' if folder.exists() else 'folder not found'}; {layout}")


def _corpus_folder_pairs(root: Path) -> list[CorpusPair]:
    """VoiceBank-DEMAND's testset (`noisy_testset_wav/`, `clean_testset_wav/`) or a DNS test folder."""
    from sepipe.data import corpus

    _need_folder(root, f"{corpus.VB_LAYOUT}; or {corpus.DNS_TEST_LAYOUT}")
    if (root / corpus.VB_FOLDERS[("noisy", "test")]).is_dir():
        return [CorpusPair(*found) for found in corpus.voicebank_files(root, "test", strict=True)]
    if (root / "noisy").is_dir():
        return [CorpusPair(*found) for found in corpus.dns_test_files(root)]
    raise InputFileError(root, f"neither a VoiceBank-DEMAND nor a DNS test folder; {corpus.VB_LAYOUT} (its testset "
                               f"is scored); or {corpus.DNS_TEST_LAYOUT}")


def _listed_pairs(path: Path) -> list[CorpusPair]:
    """Pairs of a CSV `noisy,clean` (an optional header line of those two words); paths relative to the CSV."""
    if not path.is_file():
        raise InputFileError(path, f"{'not a file' if path.exists() else 'file not found'}; {LIST_LAYOUT}")
    if path.stat().st_size > MAX_LIST_BYTES:
        raise InputFileError(path, f"{path.stat().st_size} bytes; a pair list is at most {MAX_LIST_BYTES} bytes")
    try:
        lines = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputFileError(path, f"not a UTF-8 CSV ({exc.__class__.__name__}); {LIST_LAYOUT}") from None
    pairs, names = [], {}
    for number, row in enumerate(lines, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or (number == 1 and [c.lower() for c in cells] == ["noisy", "clean"]):
            continue
        if len(cells) != 2 or not all(cells):
            raise InputFileError(path, f"line {number} has {len(cells)} field(s) {row!r:.80}; {LIST_LAYOUT}")
        noisy, clean = (Path(cell) if Path(cell).is_absolute() else path.parent / cell for cell in cells)
        name = noisy.stem
        if name in names:
            raise InputFileError(path, f"line {number}: {noisy} has the name '{name}' of line {names[name]}; "
                                       "each noisy file needs its own name (the per-file table's key)")
        names[name] = number
        pairs.append(CorpusPair(name, noisy, clean))
    if not pairs:
        raise InputFileError(path, f"lists no pair; {LIST_LAYOUT}")
    return pairs


def check_pairs(pairs: list[CorpusPair], sample_rate: int,
                resample: bool = False) -> list[tuple[CorpusPair, object, object]]:
    """(pair, noisy header, clean header) of every pair: each file readable, not empty, `sample_rate` mono
    (any rate and channel count with `resample`), and a noisy file as long as its clean reference;
    InputFileError naming the first that is not."""
    from sepipe.enhance import probe_input

    checked = []
    for pair in pairs:
        noisy = probe_input(pair.noisy, sample_rate, resample)
        clean = probe_input(pair.clean, sample_rate, resample)
        if noisy.rate == clean.rate and noisy.frames != clean.frames:
            raise InputFileError(pair.noisy, f"has {noisy.frames} samples but its clean reference {pair.clean} has "
                                             f"{clean.frames}; a pair must have the same length")
        if abs(_length_at(noisy, sample_rate) - _length_at(clean, sample_rate)) > 1:   # resampling rounds
            raise InputFileError(pair.noisy, f"lasts {noisy.seconds:.4f} s ({noisy.frames} samples at {noisy.rate} "
                                             f"Hz) but its clean reference {pair.clean} lasts {clean.seconds:.4f} s "
                                             f"({clean.frames} at {clean.rate} Hz); a pair must have the same length")
        checked.append((pair, noisy, clean))
    return checked


def _length_at(src, sample_rate: int) -> int:
    return round(src.frames * sample_rate / src.rate)


def _log_resampled(checked: list, sample_rate: int) -> None:
    """One line saying which files are converted (as `sepipe enhance` says it per file)."""
    converted = [src for _, *sources in checked for src in sources if src.rate != sample_rate or src.channels != 1]
    if converted:
        log.info("evaluate: %d of %d file(s) are not %d Hz mono (e.g. %s: %d Hz, %d channel(s)): channels averaged, "
                 "resampled with soxr to %d Hz", len(converted), 2 * len(checked), sample_rate, converted[0].path,
                 converted[0].rate, converted[0].channels, sample_rate)


def model_names(model: Path, variant: str | None, corpus: Path) -> dict[str, str]:
    """{'experiment', 'variant', 'corpus', 'stem'}: the rows' configuration columns (a run's experiment and
    variant, else the .tflite's name for both), the corpus as given, and the default output folder's name."""
    model = Path(model)
    experiment = chosen = model.stem
    if model.is_dir():
        from sepipe.bundle.source import resolve_run

        cfg, _ = resolve_run(model)
        experiment, chosen = cfg.name, variant or cfg.dense_variant.name
    corpus_name = Path(corpus).stem or "corpus"
    stem = experiment if chosen == experiment else f"{experiment}_{chosen}"
    return {"experiment": experiment, "variant": chosen, "corpus": str(corpus), "stem": f"{stem}_on_{corpus_name}"}


# --------------------------------------------------------------------------- streaming and scoring

@dataclass(frozen=True)
class _Scored:
    """What `Scorer.submit` reads of a test pair."""

    name: str
    clean: np.ndarray
    source: str


def _read(src, sample_rate: int) -> np.ndarray:
    """The whole file as mono float32 at `sample_rate` (checked, resampled as `read_blocks` does)."""
    from sepipe.enhance import read_blocks

    return np.concatenate(list(read_blocks(src, sample_rate)))


def evaluate_corpus(model, pairs: list[CorpusPair], out_dir: Path, names: dict, baselines=BASELINES,
                    workers: int = 0, progress: bool = True, resample: bool = False,
                    write_audio: int = WRITE_AUDIO) -> CorpusResult:
    """Score `model` (a sepipe.enhance.EnhanceModel) and `baselines` on `pairs`; write the tables into `out_dir`.

    names: {'experiment', 'variant', 'corpus'}: the rows' configuration columns and the page's title;
    resample: take any rate and channel count (channels averaged, soxr); write_audio: keep the first N
    files' noisy, clean, baselines' and model's audio as WAV under out_dir/audio/<system>/ (the
    experiment's layout) and embed them in the page's Listen section.
    """
    from sepipe.baselines import rnnoise_enhance
    from sepipe.evaluate import SYSTEM_OF_REFERENCE, Scorer
    from sepipe.progress import bar
    from sepipe.report.listen import CLEAN

    checked = check_pairs(pairs, model.sample_rate, resample)
    _log_resampled(checked, model.sample_rate)
    scorer = Scorer(model.sample_rate, workers)
    system = f"{names['variant']}/{model.runner.system}"
    audio_seconds, stream_seconds, kept = 0.0, 0.0, {}
    try:
        for index, (pair, noisy_src, clean_src) in enumerate(bar(checked, progress, desc="evaluate")):
            started = time.perf_counter()
            noisy, enhanced = _stream(model, noisy_src)
            stream_seconds += time.perf_counter() - started
            audio_seconds += len(enhanced) / model.sample_rate
            clean = _read(clean_src, model.sample_rate)
            if len(clean) != len(noisy):          # resampled at different rates: a sample apart at most
                length = min(len(clean), len(noisy))
                clean, noisy, enhanced = clean[:length], noisy[:length], enhanced[:length]
            scored = _Scored(pair.name, clean, str(pair.noisy))
            outputs = {system: enhanced}
            for baseline in baselines:
                outputs[SYSTEM_OF_REFERENCE[baseline]] = (
                    noisy if baseline == "noisy" else rnnoise_enhance(noisy, model.sample_rate))
            for name, audio in outputs.items():
                scorer.submit(name, scored, audio)
            if index < write_audio:
                kept[pair.name] = {SYSTEM_OF_REFERENCE["noisy"]: noisy, CLEAN[0]: clean, **outputs}
        per_file = scorer.results()
    finally:
        if scorer.pool:           # a refused file: no worker left running
            scorer.pool.shutdown(cancel_futures=True)
    rows = quality_rows(per_file, model, names, audio_seconds / max(stream_seconds, 1e-9))
    return CorpusResult(rows, per_file, write_outputs(rows, per_file, out_dir, model, names, len(pairs), kept))


def _stream(model, src) -> tuple[np.ndarray, np.ndarray]:
    """(noisy, enhanced) of one file, streamed block by block through the model as `sepipe enhance` does."""
    from sepipe.enhance import StreamEnhancer, read_blocks

    stream, parts, noisy = StreamEnhancer(model.runner, model.features), [], []
    for block in read_blocks(src, model.sample_rate):
        parts.append(stream.push(block))
        noisy.append(block)
    return np.concatenate(noisy), np.concatenate([*parts, stream.finish()])


def quality_rows(per_file: list[dict], model, names: dict, loop_rtf: float) -> list[dict]:
    """The experiment's quality table (sepipe.evaluate.quality_table): references first, then the model."""
    from sepipe.evaluate import mean_by_system, quality_table

    means = mean_by_system(per_file)
    system = f"{names['variant']}/{model.runner.system}"
    references = [{"experiment": names["experiment"], "variant": "-", "model": "-", "system": name, **stats}
                  for name, stats in means.items() if name != system]
    rows = [{"experiment": names["experiment"], "variant": names["variant"], "model": model.label,
             "system": model.runner.system, **means[system], "loop_rtf": loop_rtf}]
    return quality_table(references, rows, names["variant"])


def write_outputs(rows: list[dict], per_file: list[dict], out_dir: Path, model, names: dict,
                  files: int, kept: dict | None = None) -> list[Path]:
    """quality.{csv,md}, per_file.{csv,md}, the kept audio (`kept`: {file: {system folder: samples}}) under
    audio/ and report.html, each written atomically. The page (its Listen section read from the WAVs
    staged in a temporary folder) is rendered first, so that a failure there leaves nothing behind."""
    import tempfile

    from sepipe.artifacts import write_text
    from sepipe.report import write_tables
    from sepipe.report.page import render_html

    kept = kept or {}
    notes = [f"{model.label} on {files} file(s) of {names['corpus']}, streamed hop by hop as `sepipe enhance` "
             "does; x real time: the streaming loop alone (reading, features, network, resynthesis), one core."]
    title = f"{names['experiment']} {names['variant']} on {names['corpus']}"
    with tempfile.TemporaryDirectory(prefix="sepipe-listen-") as staging:
        _write_audio(kept, Path(staging), model.sample_rate)
        page = render_html([], title, notes=notes, quality_rows=rows,
                           listen_html=listen_section(Path(staging), kept, rows, model.sample_rate))
    out_dir = Path(out_dir)
    outputs = write_tables(rows, out_dir, "quality", notes)
    per_file_columns = (("system", "system", "{}"), ("file", "file", "{}"),
                        *((key, title, fmt) for key, title, fmt in _display_columns()
                          if key in ("si_sdr", "pesq", "stoi", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")))
    outputs += write_tables(per_file, out_dir, "per_file", columns=per_file_columns)
    outputs += _write_audio(kept, out_dir / "audio", model.sample_rate)
    outputs.append(write_text(out_dir / "report.html", page))
    return outputs


def _write_audio(kept: dict, audio_dir: Path, sample_rate: int) -> list[Path]:
    from sepipe.audio import write_wav

    return [write_wav(audio_dir / folder / f"{name}.wav", samples, sample_rate)
            for name, systems in kept.items() for folder, samples in systems.items()]


def listen_section(audio_dir: Path, kept: dict, rows: list[dict], sample_rate: int) -> str:
    """The page's Listen section for the kept files ('' when none are kept): the input, the clean target,
    then the quality table's systems (the input is shown even when 'noisy' is no baseline)."""
    from sepipe.report.listen import render_listen_section, systems_of

    if not kept:
        return ""
    systems = systems_of(rows)
    if not any(folder == "unprocessed" for folder, _ in systems):
        systems = [("unprocessed", "unprocessed"), *systems]
    return render_listen_section(audio_dir, list(kept), systems, sample_rate, kept_by="--write-audio")


def _display_columns():
    from sepipe.report import DISPLAY_COLUMNS

    return DISPLAY_COLUMNS
