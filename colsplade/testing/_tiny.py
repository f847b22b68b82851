"""Tiny random models for tests and examples (no network, seconds to build; need the [train] extra).

They live here, not in ``colsplade.training``, because a finished tiny model directory is exported to ONNX:
``training`` must not depend on ``onnx_export``, which depends on ``training``.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from colsplade._types import ModelKind, OnnxVariant

__all__ = ["TINY_WORDS", "make_tiny_base_model", "make_tiny_model_dir", "make_tiny_tokenizer"]

#: The tiny vocabulary's whole words; tests write their texts with these.
TINY_WORDS: tuple[str, ...] = tuple(
    (  # noqa: SIM905 - a word list reads better as text
        "the a an of and or to in on for with is are was were be by as at from that this it its not no "
        "cell cells gene genes protein proteins dna rna virus viral infection immune response disease "
        "cancer tumor tumour patient patients study studies result results effect effects risk increase "
        "decrease high low level levels blood brain heart liver lung kidney mouse mice human humans "
        "model models treatment therapy drug drugs dose trial clinical data analysis method methods "
        "signal pathway expression growth factor factors receptor binding activity function structure "
        "role search engine index query queries document documents sparse dense vector vectors token "
        "tokens neural retrieval rank ranking score scores cat cats dog dogs fish bird red blue green "
        "fast slow big small new old first second water air fire earth sun moon star light dark day "
        "night year time what how why which who when where does do can may will should has have had "
        "more most less many "
    ).split()
)


def make_tiny_tokenizer(out_dir: str | Path) -> Path:
    """Write a small BERT WordPiece tokenizer (vocab.txt + tokenizer.json + configs) into ``out_dir``.

    Layout follows BERT: [PAD]=0, [unused0]/[unused1] (ColBERT markers), [UNK], [CLS], [SEP], [MASK],
    then ASCII punctuation, the words of :data:`TINY_WORDS`, single letters and ``##`` suffixes.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += list(string.punctuation)
    vocab += list(dict.fromkeys(TINY_WORDS))
    vocab += list(string.ascii_lowercase) + list(string.digits)
    vocab += ["##" + c for c in string.ascii_lowercase + string.digits] + ["##s", "##ing", "##ed"]
    vocab = list(dict.fromkeys(vocab))
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    ids = {token: i for i, token in enumerate(vocab)}
    # Built with the tokenizers library directly: the same pipeline as BERT's fast tokenizer.
    backend = Tokenizer(models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece(prefix="##")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        model_max_length=512,
    )
    tokenizer.save_pretrained(str(out))
    return out


def make_tiny_base_model(
    out_dir: str | Path,
    *,
    arch: str = "bert",
    mlm: bool = False,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    max_positions: int = 512,
    vocab_size: int | None = None,
    intermediate: int | None = None,
    local_attention: int = 32,
    global_attn_every_n_layers: int = 2,
    seed: int = 0,
) -> Path:
    """Write a tiny random transformer (BERT, DistilBERT, ModernBERT or XLM-RoBERTa, the last two on the
    same small WordPiece vocabulary: the architecture is what they test) with its tokenizer into ``out_dir``.

    ``mlm=False`` saves the bare encoder (like all-MiniLM-L6-v2: no MLM head); ``mlm=True`` a
    ``*ForMaskedLM`` (like a naver SPLADE checkpoint). ``vocab_size`` larger than the tokenizer's pads the
    embedding and output rows past it, as ModernBERT does (50,368 rows for 50,280 tokens).
    ``intermediate``: the MLP width (default twice ``hidden``); ``local_attention`` /
    ``global_attn_every_n_layers``: ModernBERT's sliding window and global layers (a real one: 128 / 3).
    Any size can be built this way: ``benchmarks/long_context.py`` builds ModernBERT-base's shape.
    """
    import torch

    out = make_tiny_tokenizer(out_dir)
    ids = {t: i for i, t in enumerate((out / "vocab.txt").read_text(encoding="utf-8").splitlines())}
    if vocab_size is not None and vocab_size < len(ids):
        raise ValueError(f"vocab_size must be at least the tokenizer's {len(ids)} tokens, not {vocab_size}")
    torch.manual_seed(seed)
    model = _tiny_model(
        arch,
        mlm,
        ids,
        vocab_size=vocab_size or len(ids),
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=intermediate or hidden * 2,
        max_positions=max_positions,
        local_attention=local_attention,
        global_attn_every_n_layers=global_attn_every_n_layers,
    )
    if mlm:
        # Random heads give near-zero logits everywhere; a bias spread makes SPLADE vectors non-trivial.
        with torch.no_grad():
            bias = model.get_output_embeddings().bias
            if bias is not None:
                bias.copy_(torch.randn_like(bias))
    model.eval().save_pretrained(str(out))
    return out


def _tiny_model(
    arch: str,
    mlm: bool,
    ids: Mapping[str, int],
    *,
    vocab_size: int,
    hidden: int,
    layers: int,
    heads: int,
    intermediate: int,
    max_positions: int,
    local_attention: int,
    global_attn_every_n_layers: int,
) -> Any:
    """A random ``arch`` encoder of that shape (``*ForMaskedLM`` with ``mlm``) on the tokenizer's ``ids``."""
    from transformers import (
        BertConfig,
        BertForMaskedLM,
        BertModel,
        DistilBertConfig,
        DistilBertForMaskedLM,
        DistilBertModel,
    )

    if arch == "bert":
        config = BertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=intermediate,
            max_position_embeddings=max_positions,
        )
        model = BertForMaskedLM(config) if mlm else BertModel(config, add_pooling_layer=False)
    elif arch == "distilbert":
        config = DistilBertConfig(
            vocab_size=vocab_size,
            dim=hidden,
            n_layers=layers,
            n_heads=heads,
            hidden_dim=intermediate,
            max_position_embeddings=max_positions,
        )
        model = DistilBertForMaskedLM(config) if mlm else DistilBertModel(config)
    elif arch == "modernbert":
        from transformers import ModernBertConfig, ModernBertForMaskedLM, ModernBertModel

        config = ModernBertConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=intermediate,
            max_position_embeddings=max_positions,
            # A short sliding window, so that a text of a few dozen tokens crosses it. Not shorter than
            # twice a test query: a [MASK] expansion position with no attended token inside its window
            # has a fully masked attention row, which eager and SDPA attention fill differently (a real
            # ModernBERT's window of 128 is four times ColBERT's 32-token query).
            local_attention=local_attention,
            global_attn_every_n_layers=global_attn_every_n_layers,
            pad_token_id=ids["[PAD]"],
            cls_token_id=ids["[CLS]"],
            sep_token_id=ids["[SEP]"],
            bos_token_id=ids["[CLS]"],
            eos_token_id=ids["[SEP]"],
        )
        model = ModernBertForMaskedLM(config) if mlm else ModernBertModel(config)
    elif arch == "xlm-roberta":
        from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM, XLMRobertaModel

        config = XLMRobertaConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            intermediate_size=intermediate,
            # RoBERTa numbers positions from pad_token_id + 1
            max_position_embeddings=max_positions + ids["[PAD]"] + 2,
            type_vocab_size=1,
            pad_token_id=ids["[PAD]"],
            bos_token_id=ids["[CLS]"],
            eos_token_id=ids["[SEP]"],
        )
        model = XLMRobertaForMaskedLM(config) if mlm else XLMRobertaModel(config, add_pooling_layer=False)
    else:
        raise ValueError(f"arch must be 'bert', 'distilbert', 'modernbert' or 'xlm-roberta', not {arch!r}")
    return model


def make_tiny_model_dir(
    kind: ModelKind,
    out_dir: str | Path,
    *,
    export: bool = True,
    variants: Sequence[OnnxVariant] = ("int8",),
    dim: int = 16,
    max_query_length: int = 16,
    max_doc_length: int = 48,
    **options: object,
) -> Path:
    """A complete tiny model directory of ``kind`` (random weights, ONNX exported): for tests of code
    that needs a model directory (ingest, query) without the real base model.

    ``options`` go to :func:`colsplade.training.init_model_dir` (``pooling``, ``query_encoder``, ...).
    """
    from colsplade.training import init_model_dir

    out = Path(out_dir)
    base = make_tiny_base_model(out.parent / f".{out.name}-base")
    init_model_dir(
        kind,
        out,
        base=base,
        dim=dim,
        max_query_length=max_query_length,
        max_doc_length=max_doc_length,
        **options,  # type: ignore[arg-type]
    )
    if export:
        from colsplade.onnx_export import export_model_dir

        export_model_dir(out, variants=variants)
    return out
