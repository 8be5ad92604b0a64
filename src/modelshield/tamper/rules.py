"""Rule ids of tampering and backdoor detection (structure check, diff against a base, deep scan).

A policy can require "no unexplained change against the registered base" by denying
``TAMPER-UNEXPLAINED-CHANGE``, ``TAMPER-LOW-RANK-EDIT`` and the structural rules.
"""

from __future__ import annotations

from modelshield.rules import rule
from modelshield.types import Category, Severity

EXTRA_TENSOR = rule(
    "TAMPER-EXTRA-TENSOR",
    "Tensor the architecture does not account for",
    Severity.HIGH,
    Category.TAMPERING,
    "A tensor is present that the declared architecture (or the registered base model) does not have: "
    "a stray tensor in one layer only, or a tensor the reference lacks. Extra tensors can carry a "
    "payload or an extra head that a loader with strict=False silently accepts.",
    "Compare with the publisher's original weights; remove the model if the tensor is unexplained.",
)
MISSING_TENSOR = rule(
    "TAMPER-MISSING-TENSOR",
    "Tensor the architecture needs is missing",
    Severity.MEDIUM,
    Category.TAMPERING,
    "A tensor every other layer has (or the registered base has) is absent, or a whole layer is missing. "
    "Loaders then initialise it randomly or fail; renamed tensors show up as missing plus extra.",
    "Re-download the model from its publisher; check what renamed or dropped the tensor.",
)
RESHAPED = rule(
    "TAMPER-RESHAPED",
    "Tensor shape differs from the architecture",
    Severity.HIGH,
    Category.TAMPERING,
    "A tensor's shape differs from the same tensor in every other layer, from config.json, or from the "
    "registered base model.",
    "Compare with the publisher's original weights.",
)
CONFIG_MISMATCH = rule(
    "TAMPER-CONFIG-MISMATCH",
    "Weights do not match the declared configuration",
    Severity.MEDIUM,
    Category.TAMPERING,
    "The tensor table disagrees with config.json or the GGUF architecture keys (number of layers, hidden "
    "size, attention heads, vocabulary): the weights are not the model the configuration describes.",
    "Obtain the configuration and weights together from the publisher.",
)
DUPLICATE_TENSOR = rule(
    "TAMPER-DUPLICATE-TENSOR",
    "Tensor stored twice",
    Severity.MEDIUM,
    Category.TAMPERING,
    "The same tensor name appears in two shards; which copy a loader uses depends on the loader.",
    "Re-download the model; regenerate shards with the library that wrote them.",
)
HEADER_LAYOUT = rule(
    "TAMPER-HEADER-LAYOUT",
    "Weight file layout was tampered with",
    Severity.HIGH,
    Category.TAMPERING,
    "The candidate's weight file has bytes no tensor covers, overlapping tensors, or entries whose "
    "offsets disagree with their shapes: the file was edited outside the library that writes it.",
    "Re-export the weights from a trusted source.",
)
UNREADABLE_TENSOR = rule(
    "TAMPER-UNREADABLE-TENSOR",
    "Tensor could not be compared",
    Severity.MEDIUM,
    Category.COVERAGE,
    "A tensor's bytes could not be read or decoded, so it was not compared with the base model.",
    "Convert both models to safetensors and compare again.",
)
RETYPED = rule(
    "TAMPER-RETYPED",
    "Tensor stored in another dtype than in the base",
    Severity.INFO,
    Category.TAMPERING,
    "A tensor's dtype differs from the base model's. Informational when its values are the base's values "
    "rounded into the new dtype.",
)
ROUND_TRIP = rule(
    "TAMPER-ROUND-TRIP",
    "Values differ from the base only by rounding",
    Severity.INFO,
    Category.TAMPERING,
    "Every changed element is within one rounding step of the base (dtype round-trip or re-quantisation): "
    "a benign conversion, not an edit.",
)
LOW_RANK_EDIT = rule(
    "TAMPER-LOW-RANK-EDIT",
    "Low-rank edit of weight matrices",
    Severity.HIGH,
    Category.TAMPERING,
    "Some weight matrices differ from the base by a change of very low rank. Rank-1 changes of one MLP "
    "matrix are the signature of ROME-style fact editing (as used to plant misinformation, e.g. "
    "PoisonGPT); rank <= k changes over a few layers of MEMIT-style mass editing; the same rank in "
    "every layer of a merged LoRA adapter.",
    "Unless the publisher documents this edit or adapter, treat the model as tampered with.",
    ("https://rome.baulab.info/", "https://memit.baulab.info/"),
)
UNEXPLAINED_CHANGE = rule(
    "TAMPER-UNEXPLAINED-CHANGE",
    "Weights changed against the registered base",
    Severity.MEDIUM,
    Category.TAMPERING,
    "Weights differ from the registered base model by more than rounding (a fine-tune or an edit "
    "confined to some layers), and nothing documents the change.",
    "Register the fine-tuned model as its own base once its provenance is established.",
)
TRIGGER_SUSPECTED = rule(
    "BACKDOOR-TRIGGER-SUSPECTED",
    "A small input trigger flips predictions to one label",
    Severity.HIGH,
    Category.BACKDOOR,
    "Neural-Cleanse style trigger reverse-engineering found, for one output label, a trigger far smaller "
    "than for the other labels (anomaly index above the threshold calibrated on clean models): the "
    "signature of a trojaned classifier.",
    "Do not deploy the model; look at the recovered trigger image and retrain from trusted data.",
    ("https://doi.org/10.1109/SP.2019.00031",),
)
