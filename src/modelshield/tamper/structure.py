"""Reference-free structure check: the tensor table against the declared architecture and itself.

From headers only (names and shapes), exact, cheap. Two kinds of checks:

* **self-consistency** — layers of a stack (``model.layers.N``, ``blk.N`` ...) are numbered without
  gaps, a tensor kind present in every other layer is not missing from one, a tensor found in one
  layer only is a stray, and a tensor whose shape differs in exactly one layer is reshaped;
* **declared architecture** — ``config.json`` (layers, hidden size, heads, vocabulary, MLP width) or
  the GGUF architecture keys (``<arch>.block_count``, ``.embedding_length``, ``.attention.head_count``
  ...) must match the tensors.

Every problem is ``(rule_id, message, evidence)`` with the rule ids of :mod:`modelshield.tamper.rules`.
Legitimately heterogeneous layers (mixtures of dense and MoE layers, cross-attention every k layers)
appear in several layers, so only single-layer outliers are reported.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from modelshield.tamper import rules

Problem = tuple[str, str, str]
Shapes = Mapping[str, tuple[int, ...]]

_LAYER = re.compile(r"^(?P<prefix>.*?(?:layers|layer|h|blocks|block|blk))\.(?P<i>\d+)\.(?P<rest>.+)$")
#: Layer tensors that legitimately exist in one layer only (T5 relative position bias).
_SINGLE_LAYER_OK = ("relative_attention_bias",)
_EMBEDDINGS = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "tok_embeddings.weight", "shared.weight")
#: Minimum layers in a stack before outliers are judged.
MIN_LAYERS = 4


def check_structure(
    shapes: Shapes, config: Mapping[str, object] | None = None, gguf: Mapping[str, object] | None = None
) -> list[Problem]:
    """Every structural problem of a model's tensor table (``name -> row-major shape``)."""
    problems = list(_self_consistency(shapes, _exempt_layers(config)))
    if config:
        problems.extend(_against_config(shapes, _text_config(config)))
    if gguf:
        problems.extend(_against_gguf(shapes, gguf))
    return problems


def stacks(names: Iterable[str]) -> dict[str, dict[int, set[str]]]:
    """``prefix -> layer index -> tensor suffixes`` for every per-layer tensor name."""
    out: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for name in names:
        match = _LAYER.match(name)
        if match:
            out[match["prefix"]][int(match["i"])].add(match["rest"])
    return out


def _exempt_layers(config: Mapping[str, object] | None) -> int | None:
    """Layers numbered from here on are extra predictors (DeepSeek MTP) with their own tensors."""
    if not config:
        return None
    layers, extra = _int(config, "num_hidden_layers"), _int(config, "num_nextn_predict_layers")
    return layers if layers is not None and extra else None


def _self_consistency(shapes: Shapes, exempt_from: int | None) -> Iterable[Problem]:
    for prefix, layers in stacks(shapes).items():
        if exempt_from is not None:
            layers = {i: s for i, s in layers.items() if i < exempt_from}
        if len(layers) >= 2:
            yield from _gaps(prefix, layers)
        if len(layers) < MIN_LAYERS:
            continue
        yield from _outliers(prefix, layers)
        yield from _shape_outliers(prefix, layers, shapes)


def _gaps(prefix: str, layers: Mapping[int, set[str]]) -> Iterable[Problem]:
    present = sorted(layers)
    start = 0 if present[0] <= 1 else present[0]
    missing = [i for i in range(start, present[-1] + 1) if i not in layers]
    if missing:
        text = ", ".join(str(i) for i in missing[:20])
        yield rules.MISSING_TENSOR.id, f"{prefix}: layer(s) {text} missing (layers run {start}..{present[-1]})", text


def _outliers(prefix: str, layers: Mapping[int, set[str]]) -> Iterable[Problem]:
    counts = Counter(s for suffixes in layers.values() for s in suffixes)
    total = len(layers)
    for suffix, count in sorted(counts.items()):
        if count == 1 and not any(ok in suffix for ok in _SINGLE_LAYER_OK):
            index = next(i for i, s in layers.items() if suffix in s)
            name = f"{prefix}.{index}.{suffix}"
            yield rules.EXTRA_TENSOR.id, f"stray tensor {name}: no other of the {total} layers has it", name
        elif count == total - 1:
            index = next(i for i, s in layers.items() if suffix not in s)
            name = f"{prefix}.{index}.{suffix}"
            yield rules.MISSING_TENSOR.id, f"{name} is missing: the other {count} layers have it", name


def _shape_outliers(prefix: str, layers: Mapping[int, set[str]], shapes: Shapes) -> Iterable[Problem]:
    by_suffix: dict[str, dict[int, tuple[int, ...]]] = defaultdict(dict)
    for index, suffixes in layers.items():
        for suffix in suffixes:
            by_suffix[suffix][index] = shapes[f"{prefix}.{index}.{suffix}"]
    for suffix, per_layer in sorted(by_suffix.items()):
        if len(per_layer) < MIN_LAYERS:
            continue
        common, votes = Counter(per_layer.values()).most_common(1)[0]
        if votes == len(per_layer) - 1:
            index, shape = next((i, s) for i, s in per_layer.items() if s != common)
            name = f"{prefix}.{index}.{suffix}"
            yield (
                rules.RESHAPED.id,
                f"{name} has shape {list(shape)}; the other {votes} layers have {list(common)}",
                name,
            )


def _text_config(config: Mapping[str, object]) -> Mapping[str, object]:
    text = config.get("text_config")
    return text if isinstance(text, dict) and "hidden_size" in text else config


def _int(config: Mapping[str, object], *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _against_config(shapes: Shapes, cfg: Mapping[str, object]) -> Iterable[Problem]:
    layers = _int(cfg, "num_hidden_layers", "n_layer", "num_layers")
    found = stacks(shapes)
    if layers is not None and found:
        counts = {prefix: len(v) for prefix, v in found.items()}
        extra = _int(cfg, "num_nextn_predict_layers") or 0
        if not any(n in (layers, layers + extra) for n in counts.values()):
            main = max(counts, key=lambda p: counts[p])
            text = f"config.json declares {layers} layers, {main} has {counts[main]}"
            yield rules.CONFIG_MISMATCH.id, text, f"num_hidden_layers={layers}"
    hidden = _int(cfg, "hidden_size", "d_model", "n_embd")
    vocab = _int(cfg, "vocab_size")
    for name, shape in shapes.items():
        if name.endswith(_EMBEDDINGS) and len(shape) == 2 and "position" not in name:
            yield from _embedding(name, shape, hidden, vocab, "config.json")
    yield from _attention(shapes, cfg, hidden)
    width = _int(cfg, "intermediate_size", "n_inner")
    if width is not None:
        for name, shape in shapes.items():
            if name.endswith(("mlp.up_proj.weight", "mlp.gate_proj.weight")) and shape and shape[0] != width:
                yield (
                    rules.CONFIG_MISMATCH.id,
                    f"{name} has {shape[0]} rows, config.json intermediate_size={width}",
                    name,
                )


def _embedding(
    name: str, shape: tuple[int, ...], hidden: int | None, vocab: int | None, where: str
) -> Iterable[Problem]:
    rows, cols = shape
    if hidden is not None and cols != hidden:
        yield rules.CONFIG_MISMATCH.id, f"{name} has width {cols}, {where} declares hidden size {hidden}", name
    if vocab is not None and rows < vocab:
        yield rules.CONFIG_MISMATCH.id, f"{name} has {rows} rows, {where} declares a vocabulary of {vocab}", name


def _attention(shapes: Shapes, cfg: Mapping[str, object], hidden: int | None) -> Iterable[Problem]:
    heads = _int(cfg, "num_attention_heads", "n_head")
    if heads is None or hidden is None:
        return
    head_dim = _int(cfg, "head_dim") or hidden // heads
    kv_heads = _int(cfg, "num_key_value_heads") or heads
    for name, shape in shapes.items():
        if not shape:
            continue
        if name.endswith("self_attn.q_proj.weight") and shape[0] not in (heads * head_dim, 2 * heads * head_dim):
            text = f"{name} has {shape[0]} rows, config.json declares {heads} heads of {head_dim}"
            yield rules.CONFIG_MISMATCH.id, text, name
        if name.endswith("self_attn.k_proj.weight") and shape[0] != kv_heads * head_dim:
            text = f"{name} has {shape[0]} rows, config.json declares {kv_heads} key/value heads of {head_dim}"
            yield rules.CONFIG_MISMATCH.id, text, name


def _against_gguf(shapes: Shapes, meta: Mapping[str, object]) -> Iterable[Problem]:
    arch = meta.get("general.architecture")
    if not isinstance(arch, str):
        return
    blocks = _int(meta, f"{arch}.block_count")
    count = len(stacks(shapes).get("blk", {}))
    if blocks is not None and count and count != blocks:
        yield rules.CONFIG_MISMATCH.id, f"{arch}.block_count is {blocks}, the file has {count} blocks", "blk"
    hidden = _int(meta, f"{arch}.embedding_length")
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = getattr(tokens, "count", None)
    embd = shapes.get("token_embd.weight")
    if embd is not None and len(embd) == 2:
        yield from _embedding("token_embd.weight", embd, hidden, vocab if isinstance(vocab, int) else None, "GGUF")
    heads, kv_heads = _int(meta, f"{arch}.attention.head_count"), _int(meta, f"{arch}.attention.head_count_kv")
    if heads is None or hidden is None:
        return
    key_len = _int(meta, f"{arch}.attention.key_length") or hidden // heads
    for name, shape in shapes.items():
        if name.endswith(".attn_k.weight") and shape and shape[0] != (kv_heads or heads) * key_len:
            text = f"{name} has {shape[0]} rows, the GGUF declares {kv_heads or heads} key/value heads of {key_len}"
            yield rules.CONFIG_MISMATCH.id, text, name
