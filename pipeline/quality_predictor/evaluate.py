"""Scoring a predictor variant on the held-out test clips, in Keras and in the interpreters firmware uses.

Per target (in score units): Pearson and Spearman correlation and RMSE of the predictions against the
teacher labels, for the Keras model, the int8 .tflite in the TFLite interpreter and in TFLite Micro (what
ships). Ranking: each system's (noisy and each enhancer; clean is not a variant) mean predicted score against
its mean teacher score over the test clips, as a Spearman correlation over the systems. Binary check: the
distinct int8 codes each activation map (the output of every CONV_2D) holds over a few test clips in the
TFLite interpreter.
"""

from __future__ import annotations

import numpy as np

from sepipe import artifacts

LEVEL_CHECK_CLIPS = 8


def _correlation(kind: str, a: np.ndarray, b: np.ndarray) -> float:
    """scipy's Pearson or Spearman (ties at their mean rank); NaN where it is undefined (a constant or a
    single value), without scipy's warning."""
    from scipy import stats

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float((stats.pearsonr if kind == "pearson" else stats.spearmanr)(a, b)[0])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return _correlation("pearson", a, b)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return _correlation("spearman", a, b)


def agreement(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {"pearson": pearson(pred, truth), "spearman": spearman(pred, truth),
            "rmse": float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(truth)) ** 2)))}


def system_ranking(pred: np.ndarray, truth: np.ndarray, systems: np.ndarray) -> dict:
    """Mean predicted and teacher score per system (clean left out) and their Spearman correlation."""
    names = [s for s in dict.fromkeys(systems.tolist()) if s != "clean"]
    means_pred = np.array([pred[systems == s].mean() for s in names])
    means_true = np.array([truth[systems == s].mean() for s in names])
    return {"systems": names, "predicted": means_pred.round(4).tolist(), "teacher": means_true.round(4).tolist(),
            "spearman": spearman(means_pred, means_true)}


class Int8Model:
    """An int8 .tflite with one input and one output, in the TFLite or the TFLite Micro interpreter."""

    def __init__(self, data: bytes, runtime: str):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        probe = Interpreter(model_content=data)
        self.inp, self.out = probe.get_input_details()[0], probe.get_output_details()[0]
        if runtime in ("tflite", "tflite_ref"):
            # TFLite's own int8 kernels, no XNNPACK delegate (not what a microcontroller runs); tflite_ref: the
            # reference kernels with every tensor kept (the activation-level check reads them)
            extra = ({"experimental_preserve_all_tensors": True,
                      "experimental_op_resolver_type": OpResolverType.BUILTIN_REF} if runtime == "tflite_ref" else
                     {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES})
            self.interp = Interpreter(model_content=data, num_threads=1, **extra)
            self.interp.allocate_tensors()
            self._set = lambda q: self.interp.set_tensor(self.inp["index"], q)
            self._get = lambda: self.interp.get_tensor(self.out["index"])
        else:
            from tflite_micro.python.tflite_micro import runtime as tflm

            self.interp = tflm.Interpreter.from_bytes(data, arena_size=max(10 * len(data), 1 << 21))
            self._set = lambda q: self.interp.set_input(q, 0)
            self._get = lambda: self.interp.get_output(0)

    def predict(self, x: np.ndarray) -> np.ndarray:
        (s_in, z_in), (s_out, z_out) = self.inp["quantization"], self.out["quantization"]
        rows = []
        for clip in x:
            q = np.clip(np.round(clip[None] / s_in) + z_in, -128, 127).astype(np.int8)
            self._set(q)
            self.interp.invoke()
            rows.append((self._get().astype(np.float32)[0] - z_out) * s_out)
        return np.stack(rows)


def activation_levels(data: bytes, x: np.ndarray) -> dict[str, dict]:
    """Per activation map (the output of each CONV_2D): the distinct int8 codes it held over the clips `x` and
    the share of its values at its two most frequent codes, read with TFLite's reference kernels."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")        # preserve_all_tensors' "for debugging" warning: that is the use
        model = Int8Model(data, "tflite_ref")
    outputs = [op["outputs"][0] for op in model.interp._get_ops_details() if op["op_name"] == "CONV_2D"]
    counts: dict[int, dict[int, int]] = {t: {} for t in outputs}
    for clip in x:
        model.predict(clip[None])
        for t in outputs:
            codes, n = np.unique(model.interp.get_tensor(t), return_counts=True)
            for code, k in zip(codes.tolist(), n.tolist()):
                counts[t][code] = counts[t].get(code, 0) + k
    levels = {}
    for i, t in enumerate(outputs):
        top = sorted(counts[t].values(), reverse=True)
        levels[f"block{i}"] = {"codes": len(top), "two_code_share": round(sum(top[:2]) / sum(top), 6)}
    return levels


def evaluate_variant(cfg, variant: str, paths, needs) -> dict:
    from sepipe.quality_predictor.train import load_data, trained_model

    data = load_data(cfg)
    x, truth, systems = data.x["test"], data.scores["test"], data.system["test"]
    tflite = paths.tflite(variant).read_bytes()
    preds = {"keras": data.denormalise(trained_model(cfg, variant, paths, data).predict(x, batch_size=64, verbose=0))}
    for runtime in ("tflite", "tflm"):
        preds[runtime] = data.denormalise(Int8Model(tflite, runtime).predict(x))
    summary: dict = {"test_clips": int(len(x)), "targets": list(cfg.predictor.targets), "scores": {}, "ranking": {}}
    for j, target in enumerate(cfg.predictor.targets):
        summary["scores"][target] = {rt: agreement(p[:, j], truth[:, j]) for rt, p in preds.items()}
        summary["ranking"][target] = {rt: system_ranking(p[:, j], truth[:, j], systems) for rt, p in preds.items()}
    y_norm = (preds["keras"] - data.target_mean) / data.target_std
    y_int8 = (preds["tflite"] - data.target_mean) / data.target_std
    summary["int8_vs_keras_max_abs_normalised"] = float(np.max(np.abs(y_int8 - y_norm)))
    summary["activation_levels"] = activation_levels(tflite, x[:LEVEL_CHECK_CLIPS])
    with artifacts.atomic_path(paths.predictions(variant)) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, truth=truth, systems=systems, **preds)
    return summary
