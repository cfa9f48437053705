"""A tiny speech-quality predictor with binary activations: a second task beside enhancement (issue 17).

`sepipe predictor run experiments/quality_predictor.yaml` runs these stages through the engine's Runner
(fingerprinted, resumable, one record each), in `runs/<name>/`:

    labels -> train:<variant> -> convert:<variant> -> compile:<variant> -> evaluate:<variant> -> table

config.py (the YAML, PredictorExperiment), clips.py (fixed windows of noisy, enhanced and clean speech and
their log-mel features), labels.py (PESQ-WB and DNSMOS teacher labels, cached with their provenance),
model.py (the conv network, the Heaviside layer, the deploy graph), train.py, deploy.py (int8 and float32
TFLite, Vela, the TFLite Micro arena), evaluate.py (correlations, ranking of the enhancers, the table),
stages.py (the stage graph). Nothing here touches the enhancement ExperimentConfig.
"""
