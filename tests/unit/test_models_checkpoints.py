"""Public checkpoint formats load and score exactly like their original layout.

Each test writes a tiny checkpoint in the format's own layout, scores texts with a reimplementation of
the original library's code path (naver SPLADE, ColBERTv2's tokenizer / ColBERT.query / .doc, PyLate's
tokenize + Dense + normalize), then imports the checkpoint, exports it and compares the ONNX encoders'
scores with the reference ones.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from colsplade.encoders import load_encoder, read_model_config  # noqa: E402
from colsplade.exceptions import ModelDirectoryError  # noqa: E402
from colsplade.onnx_export import export_model_dir  # noqa: E402
from colsplade.scoring import maxsim, sparse_dot  # noqa: E402
from colsplade.testing import make_tiny_base_model  # noqa: E402
from colsplade.training import detect_checkpoint_format, import_checkpoint, load_model_dir  # noqa: E402

QUERIES = ["immune response in mice", "what does the drug do to the heart?", "gene"]
DOCS = [
    "The immune response of mice to the virus, and its effect.",
    "A drug dose changes the heart: the risk increases!",
    "Gene expression in cells.",
    "Dogs, cats and fish.",
]


def _dense(d: dict[str, float], vocab: dict[str, int]) -> np.ndarray:
    out = np.zeros(len(vocab))
    for t, w in d.items():
        out[vocab[t]] = w
    return out


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_naver_splade_checkpoint(tmp_path: Path, arch: str) -> None:
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    src = make_tiny_base_model(tmp_path / "naver", arch=arch, mlm=True)
    assert detect_checkpoint_format(src) == "naver-splade"
    # reference: naver's SPLADE -- log(1 + relu(logits)) * mask, max over tokens
    tok = AutoTokenizer.from_pretrained(str(src))
    mlm = AutoModelForMaskedLM.from_pretrained(str(src)).eval()

    def reference(texts: list[str]) -> np.ndarray:
        batch = tok(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
        with torch.no_grad():
            logits = mlm(**batch).logits
        w = torch.log1p(torch.relu(logits)) * batch["attention_mask"].unsqueeze(-1)
        return w.max(dim=1).values.numpy()

    ref_q, ref_d = reference(QUERIES), reference(DOCS)
    out = import_checkpoint(src, tmp_path / "model", max_query_length=32, max_doc_length=32)
    assert read_model_config(out).source["format"] == "naver-splade"
    export_model_dir(out, variants=())
    enc = load_encoder(out, variant="fp32")
    got_q, got_d = enc.encode_queries(QUERIES), enc.encode_documents(DOCS)
    vocab = tok.get_vocab()
    special = set(tok.all_special_ids) | {i for t, i in vocab.items() if t.startswith("[unused")}
    keep = np.array([i not in special for i in range(len(vocab))])
    for i in range(len(QUERIES)):
        for j in range(len(DOCS)):
            expected = float((ref_q[i] * keep) @ (ref_d[j] * keep))
            assert sparse_dot(got_q[i], got_d[j]) == pytest.approx(expected, rel=1e-4, abs=1e-5)
    assert np.abs(_dense(got_d[0], vocab) - ref_d[0] * keep).max() < 1e-4


def _colbert_reference(
    encoder_model: torch.nn.Module,
    project: torch.nn.Module,
    tok: object,
    *,
    q_marker: int,
    d_marker: int,
    qlen: int,
    dlen: int,
    prefix_style: str,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """ColBERTv2 ('. ' placeholder replaced by the marker) or PyLate (marker inserted) token vectors."""
    mask_id, pad_id = tok.mask_token_id, tok.pad_token_id  # type: ignore[attr-defined]
    skip = {tok.convert_tokens_to_ids(w) for w in string.punctuation}  # type: ignore[attr-defined]

    def tokenize(
        texts: list[str], marker: int, max_len: int, query: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if prefix_style == "colbertv2":
            b = tok(
                [". " + t for t in texts],
                padding="max_length" if query else "longest",
                truncation=True,
                max_length=max_len,
                return_tensors="pt",
            )  # type: ignore[operator]
            ids, att = b["input_ids"], b["attention_mask"]
            ids[:, 1] = marker
        else:  # PyLate: tokenize to max_len - 1, insert the prefix token after [CLS]
            b = tok(
                texts,
                padding="max_length" if query else "longest",
                truncation=True,
                max_length=max_len - 1,
                return_tensors="pt",
            )  # type: ignore[operator]
            ids = torch.cat(
                [b["input_ids"][:, :1], torch.full((len(texts), 1), marker), b["input_ids"][:, 1:]], 1
            )
            att = torch.cat(
                [
                    b["attention_mask"][:, :1],
                    torch.ones(len(texts), 1, dtype=torch.long),
                    b["attention_mask"][:, 1:],
                ],
                1,
            )
        if query:
            ids[ids == pad_id] = mask_id  # query augmentation; attention stays 0 on [MASK]
        return ids, att

    out = []
    for texts, marker, max_len, query in ((QUERIES, q_marker, qlen, True), (DOCS, d_marker, dlen, False)):
        ids, att = tokenize(texts, marker, max_len, query)
        with torch.no_grad():
            vec = project(encoder_model(input_ids=ids, attention_mask=att)[0])
        vec = torch.nn.functional.normalize(vec, p=2, dim=2)
        rows = []
        for b in range(len(texts)):
            keep = [(query or int(x) not in skip) and int(x) != pad_id for x in ids[b]]
            rows.append(vec[b][torch.tensor(keep)].numpy())
        out.append(rows)
    return out[0], out[1]


def test_colbertv2_checkpoint(tmp_path: Path) -> None:
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoTokenizer

    base = make_tiny_base_model(tmp_path / "base")
    src = tmp_path / "colbertv2"
    src.mkdir()
    bert = AutoModel.from_pretrained(str(base)).eval()
    torch.manual_seed(3)
    linear = torch.nn.Linear(bert.config.hidden_size, 8, bias=False)
    state = {f"bert.{k}": v.contiguous() for k, v in bert.state_dict().items()}
    state["linear.weight"] = linear.weight.detach().clone()
    save_file(state, str(src / "model.safetensors"))
    config = json.loads((base / "config.json").read_text())
    config["architectures"] = ["HF_ColBERT"]
    (src / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (src / name).write_bytes((base / name).read_bytes())
    meta = {
        "query_maxlen": 12,
        "doc_maxlen": 24,
        "dim": 8,
        "query_token_id": "[unused0]",
        "doc_token_id": "[unused1]",
        "mask_punctuation": True,
        "attend_to_mask_tokens": False,
    }
    (src / "artifact.metadata").write_text(json.dumps(meta))
    assert detect_checkpoint_format(src) == "colbertv2"

    tok = AutoTokenizer.from_pretrained(str(src))
    ref_q, ref_d = _colbert_reference(
        bert, linear, tok, q_marker=1, d_marker=2, qlen=12, dlen=24, prefix_style="colbertv2"
    )
    out = import_checkpoint(src, tmp_path / "model")
    config_out = read_model_config(out)
    assert (config_out.max_query_length, config_out.max_doc_length, config_out.colbert.dim) == (12, 24, 8)
    export_model_dir(out, variants=())
    enc = load_encoder(out, variant="fp32")
    got_q, got_d = enc.encode_queries(QUERIES), enc.encode_documents(DOCS)
    for g, r in zip(got_q + got_d, ref_q + ref_d, strict=True):
        assert g.shape == r.shape
        assert np.abs(g - r).max() < 1e-4
    for i in range(len(QUERIES)):
        for j in range(len(DOCS)):
            assert maxsim(got_q[i], got_d[j]) == pytest.approx(maxsim(ref_q[i], ref_d[j]), abs=1e-4)


@pytest.mark.parametrize("pads_with_mask", [False, True])
def test_pylate_checkpoint(tmp_path: Path, pads_with_mask: bool) -> None:
    from safetensors.torch import save_file
    from transformers import AutoModel, AutoTokenizer

    base = make_tiny_base_model(tmp_path / "base")
    src = tmp_path / "pylate"
    tok = AutoTokenizer.from_pretrained(str(base))
    tok.add_tokens(["[Q] ", "[D] "])  # PyLate adds its prefixes as new tokens
    bert = AutoModel.from_pretrained(str(base))
    bert.resize_token_embeddings(len(tok))
    bert.eval().save_pretrained(str(src))
    if pads_with_mask:  # PyLate 1.x saves its tokenizer padding with [MASK] (its query expansion)
        saved = AutoTokenizer.from_pretrained(str(base))
        saved.add_tokens(["[Q] ", "[D] "])
        saved.pad_token = saved.mask_token
        saved.save_pretrained(str(src))
    else:
        tok.save_pretrained(str(src))
    torch.manual_seed(4)
    dense = torch.nn.Linear(bert.config.hidden_size, 8, bias=False)
    (src / "1_Dense").mkdir()
    save_file({"linear.weight": dense.weight.detach().clone()}, str(src / "1_Dense/model.safetensors"))
    (src / "1_Dense/config.json").write_text(
        json.dumps(
            {
                "in_features": bert.config.hidden_size,
                "out_features": 8,
                "bias": False,
                "activation_function": "torch.nn.modules.linear.Identity",
            }
        )
    )
    (src / "modules.json").write_text(
        json.dumps(
            [
                {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                {"idx": 1, "name": "1", "path": "1_Dense", "type": "pylate.models.Dense.Dense"},
            ]
        )
    )
    (src / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "query_prefix": "[Q] ",
                "document_prefix": "[D] ",
                "query_length": 12,
                "document_length": 24,
                "do_query_expansion": True,
                "attend_to_expansion_tokens": False,
                "skiplist_words": list(string.punctuation),
            }
        )
    )
    assert detect_checkpoint_format(src) == "pylate"

    q_id, d_id = tok.convert_tokens_to_ids("[Q] "), tok.convert_tokens_to_ids("[D] ")
    ref_q, ref_d = _colbert_reference(
        bert, dense, tok, q_marker=q_id, d_marker=d_id, qlen=12, dlen=24, prefix_style="pylate"
    )
    out = import_checkpoint(src, tmp_path / "model")
    assert read_model_config(out).colbert.query_marker == "[Q] "
    # the [MASK] expansion stays: colsplade pads with the real [PAD], never with the expansion token
    assert read_model_config(out).special_tokens["pad"] == "[PAD]"
    # the torch model of the directory agrees too
    model = load_model_dir(out)
    torch_q = model.encode(QUERIES, is_query=True)["colbert"]
    assert all(np.abs(a - b).max() < 1e-5 for a, b in zip(torch_q, ref_q, strict=True))
    export_model_dir(out, variants=())
    enc = load_encoder(out, variant="fp32")
    got_q, got_d = enc.encode_queries(QUERIES), enc.encode_documents(DOCS)
    for g, r in zip(got_q + got_d, ref_q + ref_d, strict=True):
        assert g.shape == r.shape
        assert np.abs(g - r).max() < 1e-4


def test_unknown_checkpoint_layout(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ModelDirectoryError, match="cannot tell"):
        detect_checkpoint_format(tmp_path)
    with pytest.raises(ModelDirectoryError):
        import_checkpoint(tmp_path / "missing", tmp_path / "out")


def test_colbertv2_without_linear_is_refused(tmp_path: Path) -> None:
    base = make_tiny_base_model(tmp_path / "base")
    (base / "artifact.metadata").write_text("{}")
    with pytest.raises(ModelDirectoryError, match=r"linear\.weight"):
        import_checkpoint(base, tmp_path / "out")


def test_import_model_cli(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from colsplade.cli import main

    src = make_tiny_base_model(tmp_path / "naver", mlm=True)
    result = CliRunner().invoke(main, ["import-model", str(src), str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert read_model_config(tmp_path / "m").kind == "splade"
    assert (tmp_path / "m/onnx/model-int8.onnx").is_file()
    bad = CliRunner().invoke(main, ["import-model", str(tmp_path / "nothing-here"), str(tmp_path / "x")])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
