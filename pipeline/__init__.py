"""sepipe: speech-enhancement models from Keras to verified int8 TFLite for Arm Ethos-U.

One module per stage (data, features, train, convert, evaluate, report); the CLI
(`sepipe.cli`) and the Makefile are thin callers of the stage functions.
"""

__version__ = "0.1.0"
