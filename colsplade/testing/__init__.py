"""Helpers for tests of colsplade and of code built on it.

- the pytest plugin with real engine fixtures (:mod:`colsplade.testing.plugin`, loaded through its
  ``pytest11`` entry point: ``engine``, ``engine_index``, ``elasticsearch_url``, ``opensearch_url``);
- :class:`SecuredEngine`: what the ``secured_engine`` fixture gives (URL, CA, admin, ``add_user(roles)``);
- :class:`ForwardingProxy`: a real HTTP proxy in front of a node that fails the first requests or
  follows a node to another port (retry and outage tests);
- tiny random models (need the ``[train]`` extra): :func:`make_tiny_model_dir` (a complete, exported
  model directory in seconds), :func:`make_tiny_base_model`, :func:`make_tiny_tokenizer` and the
  vocabulary :data:`TINY_WORDS` their texts should use;
- tiny public-format checkpoints written by the library that defines each format, and that library's
  reader (:func:`write_reference_checkpoint`, :func:`reference_encoder`, :func:`compare_with_reference`):
  the references colsplade's importers are held to.

Importing this package is cheap: torch is imported only when a tiny model is built.
"""

from colsplade.testing._checkpoints import (
    REFERENCE_ARCHITECTURES,
    REFERENCE_FORMATS,
    compare_with_reference,
    reference_encoder,
    reference_outputs,
    write_reference_checkpoint,
)
from colsplade.testing._proxy import ForwardingProxy
from colsplade.testing._secured import SecuredEngine
from colsplade.testing._tiny import TINY_WORDS, make_tiny_base_model, make_tiny_model_dir, make_tiny_tokenizer

__all__ = [
    "REFERENCE_ARCHITECTURES",
    "REFERENCE_FORMATS",
    "TINY_WORDS",
    "ForwardingProxy",
    "SecuredEngine",
    "compare_with_reference",
    "make_tiny_base_model",
    "make_tiny_model_dir",
    "make_tiny_tokenizer",
    "reference_encoder",
    "reference_outputs",
    "write_reference_checkpoint",
]
