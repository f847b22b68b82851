"""Torch-free encoders: outputs, batching order, pruning, bad input, model directory errors."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from colsplade.encoders import (
    ColbertEncoder,
    JointEncoder,
    JointEncoding,
    ModelConfig,
    SpladeEncoder,
    load_encoder,
    read_model_config,
    select_providers,
)
from colsplade.exceptions import InvalidInputError, ModelDirectoryError

TEXTS = [
    "The immune response of mice to the virus.",
    "gene",
    "A drug dose changes the heart: the risk increases, and the clinical trial shows it in many patients.",
    "Dogs, cats and fish.",
    "what does the drug do",
]


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("torch")
    from colsplade.testing import make_tiny_model_dir

    root = tmp_path_factory.mktemp("models")
    dirs = {kind: make_tiny_model_dir(kind, root / kind) for kind in ("splade", "colbert", "joint")}
    dirs["inference_free"] = make_tiny_model_dir("joint", root / "if", query_encoder="inference_free")
    return dirs


def test_load_encoder_picks_the_class(model_dirs: dict[str, Path]) -> None:
    assert isinstance(load_encoder(model_dirs["splade"]), SpladeEncoder)
    assert isinstance(load_encoder(model_dirs["colbert"]), ColbertEncoder)
    assert isinstance(load_encoder(model_dirs["joint"]), JointEncoder)


@pytest.mark.parametrize("kind", ["splade", "colbert", "joint"])
@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_encoders_match_torch_and_keep_input_order(
    model_dirs: dict[str, Path], kind: str, variant: str
) -> None:
    from colsplade.training import load_model_dir

    model = load_model_dir(model_dirs[kind])
    # batch_size 2 with texts of very different lengths: sorted batching must restore the order
    enc = load_encoder(
        model_dirs[kind], variant=variant, batch_size=2, intra_op_threads=1, inter_op_threads=1
    )
    for is_query in (True, False):
        ref = model.encode(TEXTS, is_query=is_query)
        got = enc.encode_queries(TEXTS) if is_query else enc.encode_documents(TEXTS)
        splade = got if kind == "splade" else (got.splade if kind == "joint" else None)
        colbert = got if kind == "colbert" else (got.colbert if kind == "joint" else None)
        tol = 1e-4 if variant == "fp32" else 0.1
        if splade is not None:
            assert len(splade) == len(TEXTS)
            for g, r in zip(splade, ref["splade"], strict=True):
                if variant == "fp32":
                    assert set(g) == set(r)
                shared = set(g) & set(r)
                assert max(abs(g[t] - r[t]) for t in shared) < tol
        if colbert is not None:
            for g, r in zip(colbert, ref["colbert"], strict=True):
                assert g.dtype == np.float32 and g.shape == r.shape
                assert np.abs(g - r).max() < tol


def test_joint_returns_both(model_dirs: dict[str, Path]) -> None:
    enc = load_encoder(model_dirs["joint"])
    out = enc.encode_documents(TEXTS[:2])
    assert isinstance(out, JointEncoding)
    assert len(out.splade) == len(out.colbert) == 2
    assert all(isinstance(d, dict) for d in out.splade)
    assert out.colbert[0].shape[1] == read_model_config(model_dirs["joint"]).colbert.dim
    # ColBERT documents drop punctuation; queries are augmented to the maximum length
    assert out.colbert[0].shape[0] == 11  # [CLS] [D] 8 words [SEP] (the period dropped)
    assert enc.encode_queries(["gene"]).colbert[0].shape[0] == 16


def test_splade_pruning(model_dirs: dict[str, Path]) -> None:
    full = load_encoder(model_dirs["splade"]).encode_documents(TEXTS)
    top = load_encoder(model_dirs["splade"], doc_top_k=5).encode_documents(TEXTS)
    for f, t in zip(full, top, strict=True):
        assert len(t) == 5
        assert list(t) == list(f)[:5]  # the five largest, highest first
        assert all(w > 0 for w in f.values())
        assert not any(k.startswith("[") and k.endswith("]") and len(k) > 1 for k in f)  # no specials
    cut = load_encoder(model_dirs["splade"], threshold=0.3).encode_documents(TEXTS)
    assert all(w > 0.3 for d in cut for w in d.values())


def test_inference_free_queries(model_dirs: dict[str, Path]) -> None:
    enc = load_encoder(model_dirs["inference_free"])
    out = enc.encode_queries(["the immune response", "gene gene"])
    # initial weights are 1.0 per query token; no expansion at query time
    assert out.splade[0] == {"the": 1.0, "immune": 1.0, "response": 1.0}
    assert out.splade[1] == {"gene": 1.0}
    assert out.colbert[0].shape[0] == 16
    docs = enc.encode_documents(["the immune response"])
    assert len(docs.splade[0]) > 3  # documents still expand


def test_queries_without_vectors_run_no_transformer_on_the_inference_free_side(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = ["the immune response", "gene gene", ""]
    for kind in ("inference_free", "joint"):
        enc = load_encoder(model_dirs[kind], variant="fp32")
        full = enc.encode_queries(texts)
        terms_only = enc.encode_queries(texts, vectors=False)
        assert terms_only.splade == full.splade  # the same terms, whatever the vectors
        assert all(v.shape == (0, 16) and v.dtype == np.float32 for v in terms_only.colbert)
        with pytest.raises(InvalidInputError, match="sparse=True, vectors=True or both"):
            enc.encode_queries(texts, sparse=False, vectors=False)
    passes: list[object] = []
    forward = enc._forward
    monkeypatch.setattr(enc, "_forward", lambda *a, **kw: passes.append(kw["want"]) or forward(*a, **kw))
    enc.encode_queries(texts, vectors=False)  # the joint (encoder) side: the SPLADE outputs only
    assert passes == [["splade"]]
    free = load_encoder(model_dirs["inference_free"], variant="fp32")
    monkeypatch.setattr(free, "_forward", lambda *a, **kw: pytest.fail("a transformer pass"))
    assert free.encode_queries(["the immune response"], vectors=False).splade[0] == {
        "the": 1.0,
        "immune": 1.0,
        "response": 1.0,
    }


def test_pair_queries_without_vectors_skip_the_colbert_model(
    model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from colsplade.encoders import load_encoder_pair

    pair = load_encoder_pair(model_dirs["splade"], model_dirs["colbert"], variant="fp32")
    texts = ["gene expression in cells", "the heart"]
    full = pair.encode_queries(texts)
    monkeypatch.setattr(pair.colbert, "encode_queries", lambda *a, **kw: pytest.fail("a ColBERT pass"))
    terms_only = pair.encode_queries(texts, vectors=False)
    assert terms_only.splade == full.splade
    assert all(v.shape == (0, 16) for v in terms_only.colbert)
    with pytest.raises(InvalidInputError, match="sparse=True, vectors=True or both"):
        pair.encode_queries(texts, sparse=False, vectors=False)


@pytest.mark.parametrize("text", ["", "   ", "\n\t "])
def test_empty_and_whitespace_give_empty_results(model_dirs: dict[str, Path], text: str) -> None:
    joint = load_encoder(model_dirs["joint"])
    for out in (joint.encode_documents([text, "gene"]), joint.encode_queries([text, "gene"])):
        assert out.splade[0] == {} and out.splade[1]
        assert out.colbert[0].shape == (0, 16) and out.colbert[0].dtype == np.float32
        assert out.colbert[1].shape[0] > 0
    assert load_encoder(model_dirs["splade"]).encode_queries([text]) == [{}]
    assert load_encoder(model_dirs["colbert"]).encode_documents([]) == []


def test_overlong_text_is_truncated_and_counted(
    model_dirs: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    enc = load_encoder(model_dirs["colbert"])
    long_text = " ".join(["cells"] * 500)
    with caplog.at_level(logging.WARNING, logger="colsplade.encoders"):
        out = enc.encode_documents([long_text, "gene", long_text])
    assert enc.truncated_count == 2
    assert any("truncated" in r.message for r in caplog.records)
    assert out[0].shape == (48, 16)  # max_doc_length
    enc.encode_queries([long_text])
    assert enc.truncated_count == 3


def test_bytes_and_bad_unicode(model_dirs: dict[str, Path]) -> None:
    enc = load_encoder(model_dirs["splade"])
    assert enc.encode_documents([b"gene cells"]) == enc.encode_documents(["gene cells"])
    with pytest.raises(InvalidInputError, match="text 1 is not valid UTF-8"):
        enc.encode_documents(["ok", b"\xff\xfe gene"])
    # lone surrogates (from surrogateescape decoding) are replaced, not a crash in the tokenizer
    assert isinstance(enc.encode_documents(["gene \udcff cells"])[0], dict)
    with pytest.raises(InvalidInputError, match="int"):
        enc.encode_documents(["gene", 42])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match="single string"):
        enc.encode_documents("gene")  # type: ignore[arg-type]


def test_explain_marks_expansion_terms(model_dirs: dict[str, Path]) -> None:
    exp = load_encoder(model_dirs["joint"]).explain("immune response, mice", is_query=False)
    assert exp.tokens[:2] == ["[CLS]", "[unused1]"]
    terms = {t: e for t, _, e in exp.impacts}
    assert terms["immune"] is False  # in the text
    assert any(terms.values())  # some expansion
    assert exp.colbert_tokens == ["[CLS]", "[unused1]", "immune", "response", "mice", "[SEP]"]


def test_encode_cli(model_dirs: dict[str, Path]) -> None:
    from click.testing import CliRunner

    from colsplade.cli._encode import encode_command

    result = CliRunner().invoke(encode_command, ["--model", str(model_dirs["joint"]), "immune response"])
    assert result.exit_code == 0, result.output
    assert "SPLADE:" in result.output and "ColBERT: 16 vectors" in result.output
    assert "+ " in result.output  # an expansion term is marked
    result = CliRunner().invoke(
        encode_command, ["--model", str(model_dirs["splade"]), "--json", "--document", "gene"]
    )
    data = json.loads(result.output)
    assert data["kind"] == "splade" and data["colbert_tokens"] == []


# -- model directory errors ------------------------------------------------------------------------------
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_missing_directory_and_config(tmp_path: Path) -> None:
    with pytest.raises(ModelDirectoryError, match="does not exist"):
        load_encoder(tmp_path / "nope")
    with pytest.raises(ModelDirectoryError, match=r"colsplade\.json"):
        load_encoder(tmp_path)


@pytest.mark.parametrize(
    ("remove", "match"),
    [
        ("tokenizer.json", "tokenizer.json"),
        ("onnx/model.onnx", "colsplade export"),
        ("query_weights.npy", "query_weights.npy"),
    ],
)
def test_missing_files(model_dirs: dict[str, Path], tmp_path: Path, remove: str, match: str) -> None:
    d = _copy(model_dirs["inference_free"], tmp_path / "m")
    (d / remove).unlink()
    with pytest.raises(ModelDirectoryError, match=match):
        load_encoder(d)


def test_missing_variant(model_dirs: dict[str, Path]) -> None:
    assert not (model_dirs["colbert"] / "onnx/model-fp16.onnx").is_file()
    with pytest.raises(ModelDirectoryError, match="--variants fp16"):
        load_encoder(model_dirs["colbert"], variant="fp16", device="cpu")
    with pytest.raises(InvalidInputError, match="variant"):
        load_encoder(model_dirs["colbert"], variant="int4")


def test_wrong_kind(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ModelDirectoryError, match="holds a colbert model"):
        SpladeEncoder(model_dirs["colbert"])
    # colsplade.json says splade, but the graph is a ColBERT graph
    d = _copy(model_dirs["colbert"], tmp_path / "m")
    cfg = json.loads((d / "colsplade.json").read_text())
    cfg["kind"] = "splade"
    (d / "colsplade.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelDirectoryError, match="outputs"):
        load_encoder(d)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "cannot read"),
        ('["a list"]', "JSON object"),
        ('{"name": "x"}', "no 'kind'"),
        ('{"kind": "dense"}', "unknown model kind"),
        ('{"kind": "splade", "format_version": 99}', "Upgrade"),
        ('{"kind": "colbert", "colbert": {"dim": 0}}', "dim"),
        ('{"kind": "splade", "splade": {"pooling": "mean"}}', "pooling"),
    ],
)
def test_malformed_config(tmp_path: Path, content: str, match: str) -> None:
    (tmp_path / "colsplade.json").write_text(content)
    with pytest.raises(ModelDirectoryError, match=match):
        read_model_config(tmp_path)


def test_corrupt_onnx_file(model_dirs: dict[str, Path], tmp_path: Path) -> None:
    d = _copy(model_dirs["splade"], tmp_path / "m")
    (d / "onnx/model.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelDirectoryError, match="ONNX Runtime cannot load"):
        load_encoder(d)


def test_config_round_trip() -> None:
    cfg = ModelConfig(kind="joint", name="m", version="3")
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())) | {"future_field": 1})
    assert again == cfg and again.model_id == "m@3"
    assert again.colbert is not None and again.splade is not None


def test_providers_and_options(model_dirs: dict[str, Path]) -> None:
    assert select_providers("cpu") == ["CPUExecutionProvider"]
    assert select_providers("auto")[-1] == "CPUExecutionProvider"
    with pytest.raises(InvalidInputError):
        select_providers("tpu")
    with pytest.raises(InvalidInputError):
        load_encoder(model_dirs["splade"], batch_size=0)
    lean = load_encoder(model_dirs["splade"], memory_arena=False, intra_op_threads=1)
    assert lean.encode_documents(["gene"]) == load_encoder(model_dirs["splade"]).encode_documents(["gene"])


def test_importing_encoders_and_scoring_leaves_torch_out() -> None:
    code = (
        "import sys\n"
        "import colsplade.encoders, colsplade.scoring\n"
        "for name in ('colsplade.engines', 'colsplade.ingest', 'colsplade.query'):\n"
        "    try:\n"
        "        __import__(name)\n"
        "    except ImportError:\n"
        "        pass\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"torch/transformers imported: {result.stdout}"


def test_encoding_without_torch_installed(model_dirs: dict[str, Path]) -> None:
    # block torch and transformers entirely: the encoders must still load and encode
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from colsplade.encoders import load_encoder\n"
        f"enc = load_encoder({str(model_dirs['joint'])!r})\n"
        "out = enc.encode_documents(['immune response'])\n"
        "print(len(out.splade[0]) > 0, out.colbert[0].shape)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True (5, 16)"


def test_encode_cli_reports_bad_model_dir_cleanly(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from colsplade.cli import main

    result = CliRunner().invoke(main, ["encode", "--model", str(tmp_path), "gene"])
    assert result.exit_code == 2  # a bad model directory is bad input
    assert "colsplade.json" in result.output and "Traceback" not in result.output


def test_encoder_pair_has_the_joint_face(model_dirs: dict[str, Path]) -> None:
    from colsplade.encoders import EncoderPair, load_encoder, load_encoder_pair
    from colsplade.query import model_identity

    pair = load_encoder_pair(model_dirs["splade"], model_dirs["colbert"], variant="fp32")
    splade = load_encoder(model_dirs["splade"], variant="fp32")
    colbert = load_encoder(model_dirs["colbert"], variant="fp32")
    assert pair.config.kind == "joint" and pair.variant == "fp32"
    assert (pair.config.name, pair.config.version) == model_identity([splade, colbert])
    assert pair.config.colbert == colbert.config.colbert and pair.config.splade == splade.config.splade
    texts = ["gene expression in cells", "a second, longer document about the heart and drugs"]
    both = pair.encode_documents(texts)
    assert both.splade == splade.encode_documents(texts)
    for got, want in zip(both.colbert, colbert.encode_documents(texts), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    explanation = pair.explain(texts[0], is_query=False)
    assert explanation.impacts and explanation.colbert_tokens
    with pytest.raises(InvalidInputError, match="needs a splade model and a colbert model"):
        EncoderPair(colbert, splade)
    with pytest.raises(InvalidInputError, match="needs a splade model and a colbert model"):
        EncoderPair(load_encoder(model_dirs["joint"], variant="fp32"), colbert)


def test_load_joint_encoder_takes_one_joint_model_or_a_pair(model_dirs: dict[str, Path]) -> None:
    from colsplade.encoders import EncoderPair, load_joint_encoder

    assert load_joint_encoder(model_dirs["joint"], variant="fp32").config.kind == "joint"
    pair = load_joint_encoder(
        splade_model=model_dirs["splade"], colbert_model=model_dirs["colbert"], variant="fp32"
    )
    assert isinstance(pair, EncoderPair)
    with pytest.raises(InvalidInputError, match="not both"):
        load_joint_encoder(model_dirs["joint"], splade_model=model_dirs["splade"])
    with pytest.raises(InvalidInputError, match="give both"):
        load_joint_encoder(splade_model=model_dirs["splade"])
    with pytest.raises(InvalidInputError, match="must be joint"):
        load_joint_encoder(model_dirs["splade"], variant="fp32")


class _OwnEncoder:
    """A team's own encoder (a remote service, say): only the TextEncoder methods."""

    variant = "remote"
    truncated_count = 0

    def __init__(self, config: ModelConfig) -> None:
        self.config = config

    def encode_queries(self, texts):
        return [{"gene": 1.0} for _ in texts]

    def encode_documents(self, texts):
        return [{"gene": 1.0} for _ in texts]

    def explain(self, text, *, is_query=True):
        raise NotImplementedError


def test_as_encoder_opens_directories_pairs_and_encoders(model_dirs: dict[str, Path]) -> None:
    from colsplade.encoders import EncoderPair, TextEncoder, as_encoder

    joint = as_encoder(model_dirs["joint"], variant="fp32")
    assert isinstance(joint, JointEncoder) and isinstance(joint, TextEncoder)
    assert joint.variant == "fp32" and as_encoder(joint, variant="int8") is joint, "an encoder stays as it is"
    assert as_encoder(model_dirs["splade"]).config.kind == "splade", "any kind unless joint=True"
    pair = as_encoder((model_dirs["splade"], model_dirs["colbert"]), variant="fp32")
    assert isinstance(pair, EncoderPair) and isinstance(pair, TextEncoder)
    mixed = as_encoder(splade_model=pair.splade, colbert_model=model_dirs["colbert"], variant="fp32")
    assert mixed.config.model_id == pair.config.model_id
    assert as_encoder(pair, joint=True) is pair
    own = _OwnEncoder(ModelConfig(kind="splade", name="remote-splade"))
    assert isinstance(own, TextEncoder) and as_encoder(own) is own
    own_pair = as_encoder(splade_model=own, colbert_model=pair.colbert)
    assert own_pair.config.name.startswith("remote-splade+")
    assert own_pair.config.source["pair"]["splade"] == own.config.model_id
    with pytest.raises(InvalidInputError, match="must be joint"):
        as_encoder(model_dirs["splade"], joint=True)
    with pytest.raises(InvalidInputError, match="give both"):
        as_encoder()
    with pytest.raises(InvalidInputError, match="tuple"):
        as_encoder((model_dirs["splade"],))
    with pytest.raises(InvalidInputError, match="model directory"):
        as_encoder(42)


# -- batching by token count; the SPLADE head over real query tokens only ------------------------------------
class _RecordingSession:
    """Stands in for an encoder's ONNX Runtime session: records every run's (batch, length) and,
    when ``session`` has an extra output (the SPLADE head's logits), that output's shape."""

    def __init__(self, session, extra: str | None = None) -> None:
        self.session = session
        self.extra = extra
        self.shapes: list[tuple[int, int]] = []
        self.extra_shapes: list[tuple[int, ...]] = []

    def run(self, names, feeds):
        self.shapes.append(tuple(feeds["input_ids"].shape))
        out = self.session.run([*names, *([self.extra] if self.extra else [])], feeds)
        if self.extra:
            self.extra_shapes.append(tuple(out[-1].shape))
        return out[: len(names)]


def _assert_same_encoding(got, want, tol: float = 1e-5) -> None:
    for g, w in zip(got.splade, want.splade, strict=True):
        assert set(g) == set(w)
        assert all(abs(g[t] - w[t]) <= tol for t in w)
    for g, w in zip(got.colbert, want.colbert, strict=True):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, atol=tol)


def test_token_batches_bound_texts_and_padded_tokens() -> None:
    from colsplade.encoders._encoder import token_batches

    lengths = [3, 3, 4, 5, 5, 9, 20]
    # 3 x 4 = 12 fits; a 4th text would exceed 3 texts; 3 x 9 > 12; 2 x 20 > 12; 20 > 12 runs alone
    assert token_batches(lengths, 3, 12) == [(0, 3), (3, 5), (5, 6), (6, 7)]
    assert token_batches(lengths, 32, None) == [(0, 7)]
    assert token_batches(lengths, 1, None) == [(i, i + 1) for i in range(7)]
    assert token_batches([], 4, 10) == []


def test_token_budget_bounds_every_onnx_run_and_keeps_results(model_dirs: dict[str, Path]) -> None:
    from colsplade.testing import TINY_WORDS

    rng = np.random.default_rng(0)
    # 1 to 60 words: short texts, long ones and some cut to max_doc_length (48)
    texts = [" ".join(rng.choice(TINY_WORDS, size=int(n))) for n in rng.integers(1, 60, size=23)]
    texts[5] = "  "  # an empty text keeps its place too
    unbatched = load_encoder(model_dirs["joint"], variant="fp32", batch_size=1, max_batch_tokens=None)
    for budget in (100, 40):
        enc = load_encoder(model_dirs["joint"], variant="fp32", batch_size=6, max_batch_tokens=budget)
        assert enc.max_batch_tokens == budget
        enc.session = recorder = _RecordingSession(enc.session)
        for is_query in (False, True):
            recorder.shapes.clear()
            got = enc.encode_queries(texts) if is_query else enc.encode_documents(texts)
            one = unbatched.encode_queries if is_query else unbatched.encode_documents
            want = [one([t]) for t in texts]
            _assert_same_encoding(
                got, JointEncoding([w.splade[0] for w in want], [w.colbert[0] for w in want])
            )
            assert sum(b for b, _ in recorder.shapes) == len(texts) - 1
            assert all(b <= 6 and (b * n <= budget or b == 1) for b, n in recorder.shapes), recorder.shapes
            assert max(b for b, _ in recorder.shapes) > 1, "short texts still share a run"
            if budget < 48 and not is_query:
                assert (1, 48) in recorder.shapes, "a text longer than the budget runs alone"
    from colsplade.encoders._encoder import DEFAULT_MAX_BATCH_TOKENS

    assert load_encoder(model_dirs["joint"], device="cpu").max_batch_tokens == DEFAULT_MAX_BATCH_TOKENS
    for bad in (0, "many", 2.5):
        with pytest.raises(InvalidInputError, match="max_batch_tokens"):
            load_encoder(model_dirs["joint"], max_batch_tokens=bad)


def test_splade_head_skips_the_query_mask_augmentation(model_dirs: dict[str, Path]) -> None:
    import onnx
    import onnxruntime as ort
    import torch

    from colsplade.encoders import splade_rows
    from colsplade.training import load_model_dir, splade_pool

    enc = load_encoder(model_dirs["joint"], variant="fp32", batch_size=2)
    # The exported graph (real export path, transformer optimiser included): expose the vocabulary
    # projection's output, the (batch, positions, vocab) MatMul of the MLM head.
    graph = onnx.load(str(model_dirs["joint"] / "onnx/model.onnx"))
    weights = {t.name: t for t in graph.graph.initializer}
    vocab = enc.tokenizer.vocab_size
    heads = [
        n
        for n in graph.graph.node
        if n.op_type == "MatMul" and n.input[1] in weights and weights[n.input[1]].dims[-1] == vocab
    ]
    assert len(heads) == 1
    logits = heads[0].output[0]
    graph.graph.output.append(onnx.helper.make_tensor_value_info(logits, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    enc.session = recorder = _RecordingSession(session, extra=logits)
    queries = ["the immune response of mice to the virus", "gene", "the risk of heart disease", "dog"]
    got = enc.encode_queries(queries)
    # every query is augmented to 16 ids, but the head ran over the attended prefix only: sorted by
    # attended length, [CLS] [Q] dog/gene [SEP] share a run of width 4, the other two one of 11
    assert all(n == 16 for _, n in recorder.shapes)
    assert sorted(s[1] for s in recorder.extra_shapes) == [4, 11]
    # ... and the impacts are those of the head over every position, [MASK]s included, pooled over
    # the attended tokens (what the graph computed before the head was cut to the prefix)
    model = load_model_dir(model_dirs["joint"])
    ids, mask = model.tokenize(queries, is_query=True)
    with torch.no_grad():
        full = model.backbone(input_ids=ids, attention_mask=mask).logits
        assert full.shape[1] == 16
        pooled = splade_pool(full, mask, model.config.splade.pooling).numpy()
    want = splade_rows(pooled, enc._vocab, enc._excluded, top_k=enc.query_top_k, threshold=enc.threshold)
    for g, w in zip(got.splade, want, strict=True):
        assert set(g) == set(w)
        assert max(abs(g[t] - w[t]) for t in w) <= 1e-4
