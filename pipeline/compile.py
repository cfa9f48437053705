"""`sepipe.compile`: the Vela compile API under its historical import path (the code is in sepipe.deploy).

Kept so today's imports (`from sepipe.compile import compile_model, ...` in the CLI, the experiment
stages, benchmarks and users' scripts) keep working; new code imports from sepipe.deploy.
"""

from sepipe.deploy.compile import (CompileOptions, CompileResult, CpuFallbackError, artifact_stem, compile_many,
                                   compile_model, compile_record, fallback_message)
from sepipe.deploy.figures import FIGURE_KEYS, RECORD_KEYS, CompileRecord, RecordError, VelaFigures, write_records_csv
from sepipe.deploy.tflite_info import TfliteInfo, inspect_tflite, read_tflite_bytes
from sepipe.deploy.vela import OpPlacement, parse_cpu_reasons, parse_placement, read_summary_csv, vela_version

__all__ = ["CompileOptions", "CompileResult", "CpuFallbackError", "artifact_stem", "compile_many", "compile_model",
           "compile_record", "fallback_message", "FIGURE_KEYS", "RECORD_KEYS", "CompileRecord", "RecordError",
           "VelaFigures", "write_records_csv", "TfliteInfo", "inspect_tflite", "read_tflite_bytes", "OpPlacement",
           "parse_cpu_reasons", "parse_placement", "read_summary_csv", "vela_version"]
