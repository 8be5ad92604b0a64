"""The table: every rule id of the catalogue, proved by at least one generated fixture scanned in a fresh process.

Each :class:`Case` names the rules its report must contain. A rule may be proved by several cases
(each is checked), and a case may prove several rules when one file naturally shows them. Add a
case here for every new rule: ``test_every_rule_has_a_fixture`` fails until the table covers the
catalogue printed by a fresh ``modelshield rules``.
"""

from __future__ import annotations

from tests.e2e import archives as a
from tests.e2e import environment as env
from tests.e2e import payloads as p
from tests.e2e import weights as wt
from tests.e2e.model import Case

PICKLES = [
    Case("pickle-os-system", ("PICKLE-UNSAFE-GLOBAL",), p.corpus_sample("prim-os-system")),
    Case("pickle-subprocess-popen", ("PICKLE-UNSAFE-GLOBAL",), p.engine_payload("subprocess-popen")),
    Case("pickle-import-module", ("PICKLE-UNAPPROVED-GLOBAL",), p.corpus_sample("prim-importlib-import-module")),
    Case("pickle-code-object", ("PICKLE-CODE-OBJECT",), p.corpus_sample("prim-compile-functiontype")),
    Case("pickle-ext-code", ("PICKLE-EXT-UNKNOWN",), p.corpus_sample("op-ext1")),
    Case("pickle-truncated", ("PICKLE-MALFORMED",), p.corpus_sample("broken-truncated-no-stop")),
    Case("pickle-persid", ("PICKLE-PERSID",), p.corpus_sample("op-persid-p0-after-payload")),
    Case("pickle-build-setstate", ("PICKLE-SUSPICIOUS-CALL",), p.corpus_sample("op-build-setstate-namespace")),
    Case("pickle-after-npy", ("PICKLE-TRAILING-DATA",), p.corpus_sample("ctr-polyglot-npy-then-pickle")),
    Case("pickle-unreviewed-class", ("PICKLE-UNREVIEWED-CLASS",), p.corpus_sample("prim-timeit-timeit")),
]

CONTAINERS = [
    Case("zip-crc", ("ZIP-CRC-MISMATCH",), p.corpus_sample("ctr-torch-zip-bad-crc")),
    Case("zip-encryption-flag", ("ZIP-FLAG-TAMPERED",), p.corpus_sample("ctr-torch-zip-encryption-flag")),
    Case("zip-local-name", ("ZIP-HEADER-MISMATCH",), p.corpus_sample("ctr-torch-zip-local-name-mismatch")),
    Case("zip-deflate64", ("ZIP-UNSUPPORTED-METHOD",), a.zip_unsupported_method),
    Case("pickle-then-zip", ("PREPENDED-DATA",), p.corpus_sample("ctr-polyglot-pickle-then-zip")),
    Case("zip-then-pickle", ("TRAILING-DATA",), p.corpus_sample("ctr-polyglot-zip-then-pickle")),
    Case("zip-slip", ("ARCHIVE-PATH-TRAVERSAL",), a.zip_path_traversal),
    Case("tar-slip", ("ARCHIVE-PATH-TRAVERSAL",), a.tar_path_traversal),
    Case("zip-overlapping-members", ("ARCHIVE-BOMB",), a.zip_bomb_overlap),
    Case("zip-bzip2-ratio", ("ARCHIVE-BOMB",), a.zip_bomb_ratio),
    Case("bzip2-ratio", ("ARCHIVE-BOMB",), a.bzip2_bomb),
    Case("7z-password", ("ARCHIVE-ENCRYPTED",), a.sevenzip_encrypted),
    Case("zip-symlink", ("ARCHIVE-LINK-MEMBER",), a.zip_symlink),
    Case("tar-symlink", ("ARCHIVE-LINK-MEMBER",), a.tar_symlink),
    Case("tar-hardlink", ("ARCHIVE-LINK-MEMBER",), a.tar_hardlink),
    Case("7z-symlink", ("ARCHIVE-LINK-MEMBER",), a.sevenzip_symlink),
    Case("gzip-12-deep", ("LIMIT-EXCEEDED",), a.nested_gzip),
    Case("zip-no-central-directory", ("PARSE-ERROR",), a.truncated_zip),
]

COVERAGE = [
    Case("unknown-bytes", ("UNKNOWN-CONTENT",), a.unknown_bytes),
    Case("empty-file", ("EMPTY-FILE",), a.empty_file),
    Case("dangling-symlink", ("UNREADABLE",), a.dangling_symlink),
    Case("worker-timeout", ("SCAN-CRASH",), a.sparse_file_with_timeout),
    Case("plugin-reader-raises", ("INTERNAL-ERROR",), env.failing_plugin_reader),
    Case("no-yara-x", ("YARA-UNAVAILABLE",), env.without("yara_x", env.config_json)),
    Case("no-h5py", ("H5-NOT-INSPECTED",), env.without("h5py", env.h5_weights)),
]

GENERIC = [
    Case("eicar", ("EICAR-TEST-FILE",), a.eicar),
    Case("elf-after-safetensors", ("EMBEDDED-EXECUTABLE", "SAFETENSORS-HIDDEN-BYTES"), a.elf_appended_to_safetensors),
    Case("shell-script", ("SHEBANG-SCRIPT",), a.shell_script),
    Case("reverse-shell-card", ("YARA-MATCH",), a.reverse_shell_readme),
]

HF = [
    Case(
        "modeling-py",
        (
            "PY-DECODED-EXEC",
            "PY-DYNAMIC-EXEC",
            "PY-DYNAMIC-IMPORT",
            "PY-FILE-WRITE",
            "PY-NATIVE-CODE",
            "PY-NETWORK",
            "PY-PROCESS-EXEC",
            "PY-UNSAFE-DESERIALIZE",
        ),
        p.python_module,
    ),
    Case("auto-map-repo", ("HF-REMOTE-CODE",), p.remote_code_repo),
    Case("auto-map-other-repo", ("HF-REMOTE-CODE-EXTERNAL",), p.external_remote_code),
    Case("modules-json-os-system", ("HF-UNSAFE-MODULE-TYPE",), p.modules_json),
    Case("duplicate-auto-map", ("JSON-DUPLICATE-KEY",), p.duplicate_key_config),
    Case("mlflow-cloudpickle", ("MLFLOW-PICKLE-FLAVOR",), p.mlflow_pickle_flavor),
    Case("lfs-pointer", ("LFS-POINTER-NOT-FETCHED",), p.lfs_pointer),
    Case("bin-beside-safetensors", ("HF-PICKLE-WEIGHTS",), wt.pickle_beside_safetensors),
    Case("template-ssti", ("TEMPLATE-SSTI",), p.chat_template(p.SSTI_TEMPLATE)),
    Case("gguf-template-ssti", ("TEMPLATE-SSTI",), wt.gguf_ssti),
    Case("template-engine-internals", ("TEMPLATE-SUSPICIOUS",), p.chat_template(p.SUSPICIOUS_TEMPLATE)),
    Case("template-unparseable", ("TEMPLATE-UNANALYSED",), p.chat_template(p.BROKEN_TEMPLATE)),
]

WEIGHTS = [
    Case("safetensors-overlap", ("SAFETENSORS-HEADER-ABUSE",), wt.safetensors_overlap),
    Case("safetensors-length-past-eof", ("SAFETENSORS-HEADER-ABUSE",), wt.safetensors_length(1 << 20)),
    Case("safetensors-length-2-48", ("SAFETENSORS-HEADER-ABUSE",), wt.safetensors_length(1 << 48)),
    Case("safetensors-pickle-header", ("SAFETENSORS-HEADER-ABUSE",), wt.safetensors_pickle_header),
    Case("safetensors-metadata-types", ("SAFETENSORS-BAD-METADATA",), wt.safetensors_bad_metadata),
    Case("safetensors-trailing-pickle", ("SAFETENSORS-HIDDEN-BYTES",), wt.safetensors_trailing),
    Case(
        "index-missing-shard",
        ("SAFETENSORS-INDEX-INCONSISTENT",),
        wt.sharded_index(
            {"w": "model-00001-of-00002.safetensors", "v": "model-00002-of-00002.safetensors"},
            ("model-00001-of-00002.safetensors",),
        ),
    ),
    Case(
        "index-shard-escapes",
        ("SAFETENSORS-INDEX-PATH-ESCAPE",),
        wt.sharded_index({"w": "../outside/model.safetensors"}, ()),
    ),
    Case("gguf-five-dims", ("GGUF-HEADER-OVERFLOW",), wt.gguf_five_dims),
    Case("gguf-duplicate-key", ("GGUF-HEADER-ANOMALY",), wt.gguf_duplicate_key),
    Case("gguf-trailing-pickle", ("GGUF-HIDDEN-BYTES",), wt.gguf_trailing),
    Case("npy-truncated", ("NPY-SIZE-MISMATCH",), wt.npy_truncated),
    Case("torch-legacy-truncated", ("TORCH-LEGACY-LAYOUT",), wt.torch_legacy_truncated),
    Case("torchscript-custom-op", ("TORCHSCRIPT-CUSTOM-OP",), wt.torchscript_custom_op),
    Case("torchscript-from-file", ("TORCHSCRIPT-DANGEROUS-CODE",), wt.torchscript_reads_file),
    Case("h5-external-link", ("H5-EXTERNAL-REFERENCE",), wt.h5_external_link),
    Case("h5-huge-dataset", ("H5-SHAPE-BOMB",), wt.h5_shape_bomb),
]

ONNX = [
    Case("onnx-pyop", ("ONNX-CUSTOM-CODE-OP",), wt.onnx_case(wt.onnx_python_op)),
    Case("onnx-custom-domain", ("ONNX-NONSTANDARD-DOMAIN",), wt.onnx_case(wt.onnx_custom_domain)),
    Case("onnx-absurd-dims", ("ONNX-ABSURD-TENSOR",), wt.onnx_case(wt.onnx_absurd_tensor)),
    Case("onnx-dead-branch", ("ONNX-DEAD-OPERATOR",), wt.onnx_case(wt.onnx_dead_operator)),
    Case("onnx-unused-initializer", ("ONNX-STRAY-INITIALIZER",), wt.onnx_case(wt.onnx_stray_initializer)),
    Case("onnx-external-traversal", ("ONNX-EXTERNAL-DATA-TRAVERSAL",), wt.onnx_external("../canary")),
    Case("onnx-external-missing", ("ONNX-EXTERNAL-DATA-MISSING",), wt.onnx_external("gone.bin")),
    Case("onnx-external-short", ("ONNX-EXTERNAL-DATA-MISSING",), wt.onnx_external("weights.bin", length=str(1 << 30))),
    *(
        Case(f"onnx-bomb-{op.lower()}", ("ONNX-SHAPE-BOMB",), wt.onnx_case(wt.onnx_shape_bomb(op)))
        for op in ("ConstantOfShape", "Expand", "Tile", "Reshape")
    ),
]

KERAS_TF = [
    Case("keras-lambda", ("KERAS-LAMBDA",), wt.tf_fixture("lambda_keras")),
    Case("keras-h5-lambda", ("KERAS-LAMBDA",), wt.tf_fixture("lambda_h5")),
    Case("keras-module-os", ("KERAS-UNSAFE-MODULE",), wt.tf_fixture("cve_2025_1550")),
    Case("keras-get-file", ("KERAS-UNSAFE-FUNCTION",), wt.tf_fixture("get_file")),
    Case(
        "keras-custom-layer",
        ("KERAS-CUSTOM-OBJECT",),
        wt.keras_edit({"module": None, "class_name": "MyLayer", "config": {}, "registered_name": "Custom>MyLayer"}),
    ),
    Case(
        "keras-lookup-file",
        ("KERAS-LOOKUP-FILE",),
        wt.keras_edit(
            {
                "module": "keras.layers",
                "class_name": "StringLookup",
                "config": {"name": "lookup", "vocabulary": "CANARY"},
                "registered_name": None,
            }
        ),
    ),
    Case(
        "keras-name-traversal",
        ("KERAS-NAME-TRAVERSAL",),
        wt.keras_edit(
            {"module": "keras.layers", "class_name": "Dense", "config": {"name": "../../x"}, "registered_name": None}
        ),
    ),
    Case(
        "keras-torch-module",
        ("KERAS-TORCH-MODULE",),
        wt.keras_edit(
            {
                "module": "keras.layers",
                "class_name": "TorchModuleWrapper",
                "config": {"name": "wrapped"},
                "registered_name": None,
            }
        ),
    ),
    Case("keras-extra-weight-group", ("TAMPER-EXTRA-LAYER-WEIGHTS",), wt.keras_extra_weights),
    Case("keras-weights-not-hdf5", ("TAMPER-KERAS-UNCHECKED",), wt.keras_unreadable_weights),
    Case("tf-pyfunc", ("TF-PYTHON-OP",), wt.tf_fixture("tf_pyfunc")),
    Case("tf-read-write-file", ("TF-FILE-OP",), wt.tf_fixture("tf_fileops")),
    Case("tf-savev2-fixed-path", ("TF-CHECKPOINT-PATH",), wt.child_fixture("tf_extra", "checkpoint_path")),
    Case("tf-unknown-op", ("TF-CUSTOM-OP",), wt.child_fixture("tf_extra", "custom_op")),
    Case("tf-asset-outside", ("TF-ASSET-PATH",), wt.child_fixture("tf_extra", "asset_path")),
    Case("tflite-custom-op", ("TFLITE-CUSTOM-OP",), wt.child_fixture("tf_extra", "tflite", "custom.tflite")),
    Case("coreml-custom-layer", ("COREML-CUSTOM-CODE",), wt.child_fixture("coreml", "custom-layer.mlmodel")),
    Case("coreml-linked", ("COREML-LINKED-MODEL",), wt.child_fixture("coreml", "linked.mlmodel")),
    Case("coreml-linked-outside", ("COREML-LINKED-MODEL-PATH",), wt.child_fixture("coreml", "linked-outside.mlmodel")),
    Case("coreml-opaque", ("COREML-OPAQUE-MODEL",), wt.child_fixture("coreml", "opaque.mlmodel")),
]

TAMPER = [
    Case(
        "stray-tensor",
        ("TAMPER-EXTRA-TENSOR",),
        wt.structural(wt.stray_tensor, "A Llama-shaped model where one layer has an extra tensor."),
    ),
    Case(
        "missing-tensor",
        ("TAMPER-MISSING-TENSOR",),
        wt.structural(wt.missing_tensor, "A Llama-shaped model missing one layer's up projection."),
    ),
    Case(
        "reshaped-tensor",
        ("TAMPER-RESHAPED",),
        wt.structural(wt.reshaped_tensor, "A Llama-shaped model with one reshaped projection."),
    ),
    Case("config-6-layers", ("TAMPER-CONFIG-MISMATCH",), wt.config_mismatch),
    Case("rank-one-edit", ("TAMPER-LOW-RANK-EDIT",), wt.against_base(wt.cand_rank_one, "ROME-like edit vs its base.")),
    Case(
        "fine-tuned", ("TAMPER-UNEXPLAINED-CHANGE",), wt.against_base(wt.cand_fine_tuned, "Dense change vs its base.")
    ),
    Case(
        "bf16-round-trip",
        ("TAMPER-RETYPED", "TAMPER-ROUND-TRIP"),
        wt.against_base(wt.cand_bf16, "BF16 copy of its base."),
    ),
    Case(
        "trailing-vs-base",
        ("TAMPER-HEADER-LAYOUT",),
        wt.against_base(wt.cand_trailing, "Base weights with appended bytes."),
    ),
    Case(
        "tensor-in-two-files",
        ("TAMPER-DUPLICATE-TENSOR",),
        wt.against_base(wt.cand_duplicate, "Base weights split over two files, one tensor in both."),
    ),
    Case(
        "truncated-vs-base",
        ("TAMPER-UNREADABLE-TENSOR",),
        wt.against_base(wt.cand_truncated, "Base weights with the data cut short."),
    ),
    Case("trojaned-cnn", ("BACKDOOR-TRIGGER-SUSPECTED",), wt.trojaned_classifier),
]

ADVISORIES = [
    Case("torch-checkpoint", ("VULN-PATTERN",), wt.torch_checkpoint),
    Case("onnx-by-torch-2-5-1", ("VULN-REQUIREMENT", "VULN-INFO"), wt.onnx_made_by_old_torch),
    Case("keras-lambda-made-by-3-3-3", ("VULN-LOADER",), wt.keras_recorded_old_version),
    Case(
        "gguf-old-llama-cpp",
        ("VULN-LOADER",),
        env.with_old_loader("llama-cpp-python", "0.2.71", env.gguf_file(None)),
    ),
    Case(
        "gguf-template-old-llama-cpp",
        ("VULN-EXPLOITABLE",),
        env.with_old_loader(
            "llama-cpp-python", "0.2.71", env.gguf_file("{% for m in messages %}{{ m.content }}{% endfor %}")
        ),
    ),
    Case("expired-waiver", ("POLICY-WAIVER-EXPIRED",), env.expired_waiver),
]

DYNAMIC = [
    Case("detonate-sleep", ("DYN-TIMEOUT",), p.detonation("sleep", "--timeout", "5"), sandbox=True, slow=True),
    Case("detonate-shell", ("DYN-PROCESS-EXEC", "DYN-IMPORT"), p.detonation("shell"), sandbox=True),
    Case("detonate-write", ("DYN-FILE-WRITE",), p.detonation("write"), sandbox=True),
    Case("detonate-read-outside", ("DYN-FILE-READ",), p.detonation("read-outside"), sandbox=True),
    Case("detonate-connect", ("DYN-NETWORK",), p.detonation("connect"), sandbox=True),
    Case("detonate-exec", ("DYN-CODE-EXEC",), p.detonation("exec"), sandbox=True),
    Case("detonate-putenv", ("DYN-ENVIRONMENT",), p.detonation("putenv"), sandbox=True),
    Case("detonate-8gib", ("DYN-RESOURCE-LIMIT",), p.detonation("allocate-8gib"), sandbox=True),
    Case("detonate-abort", ("DYN-CRASH",), p.detonation("abort"), sandbox=True),
    Case("detonate-sys-modules", ("DYN-HOOK-TAMPER",), p.reach_sys_modules, sandbox=True),
    Case("detonate-onnx", ("DYN-LOADER-UNAVAILABLE",), p.onnx_without_runtime, sandbox=True),
]

CASES: list[Case] = [
    *PICKLES,
    *CONTAINERS,
    *COVERAGE,
    *GENERIC,
    *HF,
    *WEIGHTS,
    *ONNX,
    *KERAS_TF,
    *TAMPER,
    *ADVISORIES,
    *DYNAMIC,
]

#: Rules with no fixture, each with why no command line can trigger it and the in-process test that covers it.
EXEMPT: dict[str, str] = {
    "FLEET-FETCH-FAILED": "emitted only by the fleet engine (fleet scan / scan --engine ray), never by a file scan; "
    "proven through the CLI in tests/fleet/test_cli.py (missing path, unknown scheme) and tests/fleet/test_engine.py",
    "FLEET-FILE-CHANGED": "emitted only by the fleet engine when a listed file changes before its task reads it; "
    "proven in tests/fleet/test_engine.py and tests/fleet/test_task.py (same-size content change)",
}


def by_rule() -> dict[str, list[Case]]:
    """Rule id -> the cases that prove it."""
    table: dict[str, list[Case]] = {}
    for case in CASES:
        for rule_id in case.proves:
            table.setdefault(rule_id, []).append(case)
    return table
