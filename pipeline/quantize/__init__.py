"""Quantization: model I/O read from a flatbuffer (model_io), schemes (int8, int16x8), calibration,
conversion in a subprocess (convert, worker).

Import the submodules directly; this package imports nothing, so the runtime (which needs
model_io) and conversion (which needs the runtime) never import each other through it:

    sepipe.quantize.model_io     TensorIO, ModelIO, tflite_io, read_tflite_bytes, validate_quantized_model
    sepipe.quantize.schemes      SCHEMES, QuantScheme, get_scheme
    sepipe.quantize.calibration  CalibrationSet, collect_calibration, save_calibration, load_calibration
    sepipe.quantize.convert      convert_quantized, convert_untrained
"""
