"""The hand-off bundle: everything a firmware engineer needs to run one compiled model.

    make_bundle(run, variant, target)  ->  <out>/<exp>_<variant>_<target>/  and  <out>/<exp>_<variant>_<target>.zip
    verify_bundle(folder or zip)       ->  BundleReport (every hash, golden vectors re-run through TFLite Micro)

Bundle layout (`<name>` is `<exp>_<variant>`):

    model/<name>.tflite                    the int8 (or 16x8) model: reference kernels, the golden vectors' source
    model/<name>_vela_<target>.tflite      the Vela-compiled model: what the Ethos-U firmware runs
    c/model_data.c, c/model_data.h         the VELA model as a 16-byte aligned C array in a named section
    c/model_io.h                           tensor positions, shapes, quantisation, state feedback, feature constants
    c/model_desc.c                         the model as a const se_model_desc_t (firmware_stub/se_model_desc.h)
    c/model_ops.cc, c/model_ops.h          TFLite Micro op resolvers: exactly each model's op types
    golden/                                features, states and outputs of consecutive frames of real audio (TFLM)
    vela/                                  Vela's summary CSV, per-layer CSV and operator placement
    model_manifest.json                    the contract: tensors, state pairs, features, arena, Vela figures, hashes
    README.md                              for the firmware engineer
    SHA256SUMS                             `sha256sum -c SHA256SUMS` compatible; covers every other file

The folder and its zip (sorted entries, fixed timestamps and permissions: equal inputs give equal bytes)
are built in a temporary folder beside the final ones; inside it the manifest is written after every file
it hashes and SHA256SUMS (which covers the manifest) last, so a folder without SHA256SUMS is unfinished and
does not verify. Then the old zip is removed, the folder renamed into place and the zip last: an
interrupted `sepipe bundle` never leaves a folder and a zip of two different builds.
Nothing in a bundle depends on the time or the machine's paths, so bundling twice gives the same bytes.

Modules: `source` (the run, variant and compile record to bundle; test audio), `arena` (the TFLite Micro
tensor arena), `kernel_arena` (the arena per kernel set for a 32-bit Cortex-M, derived from the layers),
`model_ops` (a model's op types and fully-connected layers), `build` (make_bundle: files, manifest, hashes, folder, zip), `readme` (README.md),
`verify` (verify_bundle: exit codes in its docstring), `limits` (the zip and folder bounds an untrusted
bundle is read within), `spec` (the manifest's fields, checked for type and range), `rerun` (the TFLite
Micro re-run in a child process), `layout` (file names, formulas and bounds the format fixes).
With `--predictor`: `predictor_source` (the quality-predictor run, variant and compile to bundle), `predictor`
(its files, C descriptor, golden windows and manifest section: the image's second model), `predictor_verify`
(verify-bundle's checks of it; a bundle without it verifies as before).
"""

from sepipe.bundle.arena import ARENA_HEADROOM, ARENA_ROUND, measure_tflm_arena, probe_tflm_arena
from sepipe.bundle.build import feature_section, make_bundle, write_zip
from sepipe.bundle.layout import (BUNDLE_FORMAT, C_ALIGNMENT, C_HEADER, C_SECTION, C_SOURCE, C_SYMBOL,
                                    DEFAULT_FRAMES, DEQUANTIZE_FORMULA, MANIFEST, MAX_FRAMES, QUANTIZE_FORMULA,
                                    REQUANTIZE_FORMULA, SUMS)
from sepipe.bundle.limits import LIMITS, Limits
from sepipe.bundle.readme import readme_text
from sepipe.bundle.source import (BundleError, BundleSource, bundle_name, find_source, pick_test_audio,
                                    resolve_run)
from sepipe.bundle.verify import BundleReport, c_array_bytes, verify_bundle

__all__ = [
    "ARENA_HEADROOM", "ARENA_ROUND", "BUNDLE_FORMAT", "C_ALIGNMENT", "C_HEADER", "C_SECTION", "C_SOURCE", "C_SYMBOL",
    "DEFAULT_FRAMES", "DEQUANTIZE_FORMULA", "LIMITS", "Limits", "MANIFEST", "MAX_FRAMES", "QUANTIZE_FORMULA",
    "REQUANTIZE_FORMULA", "SUMS",
    "BundleError", "BundleReport", "BundleSource", "bundle_name", "c_array_bytes",
    "feature_section", "find_source", "make_bundle", "measure_tflm_arena", "pick_test_audio", "probe_tflm_arena",
    "readme_text", "resolve_run", "verify_bundle", "write_zip",
]
