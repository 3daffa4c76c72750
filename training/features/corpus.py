"""Ordinary (non-game) chat text for SAE training, generated offline and seeded.

No data set can be downloaded here, so the chat side of the SAE's data is built from two
sources that are on every machine:

* ``questions``: everyday user requests (cooking, travel, science, writing, maths, code,
  health, history, ...) assembled from hand-written templates and subjects, rendered with
  the model's chat template up to the start of the assistant's reply;
* ``docstrings``: Python standard-library docstrings (public, shipped with Python), as a
  question about the function and its docstring as the assistant's answer, so the text has
  long stretches of ordinary English and code-flavoured prose in both roles.

Everything depends only on the seed and the Python version's docstrings.
"""

from __future__ import annotations

import importlib
import inspect
import random
from typing import Any

CHAT_SYSTEM = "You are a helpful assistant."

_QUESTION_TEMPLATES = (
    "Can you explain {s} in simple terms?",
    "What are three interesting facts about {s}?",
    "Write a short poem about {s}.",
    "I am preparing a presentation on {s}. What should I cover first?",
    "Give me a beginner's guide to {s}.",
    "What is the history of {s}?",
    "Summarise the main arguments for and against {s}.",
    "How would you describe {s} to a ten year old?",
    "List some common mistakes people make with {s}.",
    "What books or resources would you recommend to learn about {s}?",
    "Write a friendly email to a colleague about {s}.",
    "What questions should I ask an expert on {s}?",
)

_SUBJECTS = (
    "baking sourdough bread",
    "the water cycle",
    "planning a trip to Japan",
    "photosynthesis",
    "learning to play the guitar",
    "the French Revolution",
    "compound interest",
    "black holes",
    "training for a marathon",
    "growing tomatoes on a balcony",
    "the history of jazz",
    "writing a cover letter",
    "how vaccines work",
    "recursion in programming",
    "the stock market",
    "climate change",
    "meditation",
    "the Roman Empire",
    "electric cars",
    "saving money on groceries",
    "learning a second language",
    "volcanoes",
    "the human heart",
    "renaissance painting",
    "caring for a puppy",
    "public speaking",
    "prime numbers",
    "the moon landing",
    "recycling plastic",
    "chess openings",
    "coffee brewing methods",
    "the immune system",
    "machine learning",
    "ancient Egypt",
    "time management",
    "bird migration",
    "the printing press",
    "solar panels",
    "writing unit tests",
    "the Pythagorean theorem",
    "sleep hygiene",
    "folk music",
    "rainforests",
    "negotiating a salary",
    "the periodic table",
    "knitting a scarf",
    "earthquakes",
    "democracy",
)

_STANDALONE = (
    "What is the capital of Australia?",
    "Translate 'good morning, how are you?' into Spanish.",
    "How many minutes are there in a week?",
    "Suggest a name for a small bakery by the sea.",
    "What is 17 times 23?",
    "Write a haiku about autumn rain.",
    "Why is the sky blue?",
    "Help me write a birthday message for my grandmother.",
    "What's a good vegetarian dinner I can cook in twenty minutes?",
    "Explain the difference between weather and climate.",
    "How do I reverse a list in Python?",
    "Can you recommend a board game for four players?",
    "What should I pack for a weekend of hiking?",
    "Tell me a short story about a lighthouse keeper.",
    "Is a tomato a fruit or a vegetable?",
    "How do I politely decline a meeting invitation?",
    "What are the rules of football, briefly?",
    "Convert 100 degrees Fahrenheit to Celsius.",
    "Write a limerick about a cat who loves cheese.",
    "What is the difference between a list and a tuple?",
)

_DOC_MODULES = (
    "json",
    "collections",
    "itertools",
    "functools",
    "textwrap",
    "string",
    "re",
    "math",
    "statistics",
    "datetime",
    "pathlib",
    "random",
    "heapq",
    "bisect",
    "csv",
    "argparse",
    "shutil",
    "os.path",
    "fractions",
    "decimal",
    "difflib",
    "calendar",
    "fnmatch",
    "glob",
    "html",
    "urllib.parse",
    "zipfile",
    "tempfile",
    "operator",
    "copy",
    "pprint",
    "secrets",
    "uuid",
    "base64",
    "hashlib",
    "contextlib",
    "dataclasses",
    "enum",
    "sched",
)

_DOC_QUESTIONS = (
    "What does {name} do?",
    "How do I use {name} in Python?",
    "Explain {name}.",
    "Can you document {name} for me?",
)


def stdlib_docstrings(min_chars: int = 120, max_chars: int = 900) -> list[tuple[str, str]]:
    """``(qualified name, docstring)`` pairs from a fixed list of standard-library modules,
    in a deterministic order."""
    out: list[tuple[str, str]] = []
    for mod_name in _DOC_MODULES:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:  # pragma: no cover - every module above is in the stdlib
            continue
        for attr in sorted(dir(mod)):
            if attr.startswith("_"):
                continue
            obj = getattr(mod, attr, None)
            if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj)):
                continue
            doc = inspect.getdoc(obj) or ""
            if len(doc) < min_chars:
                continue
            out.append((f"{mod_name}.{attr}", doc[:max_chars].rsplit(" ", 1)[0] if len(doc) > max_chars else doc))
    seen: set[str] = set()
    unique = []
    for name, doc in out:
        if doc not in seen:
            seen.add(doc)
            unique.append((name, doc))
    return unique


def chat_texts(tokenizer: Any, n: int, *, seed: int = 0, docstring_share: float = 0.5) -> list[tuple[str, str]]:
    """``n`` rendered chat texts as ``(source, text)``, ``source`` being ``questions`` or
    ``docstrings``; about ``docstring_share`` of them are docstring dialogues."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    docs = stdlib_docstrings()
    rng.shuffle(docs)
    questions = [t.format(s=s) for t in _QUESTION_TEMPLATES for s in _SUBJECTS] + list(_STANDALONE)
    rng.shuffle(questions)
    n_docs = min(len(docs), round(n * docstring_share))
    out: list[tuple[str, str]] = []
    for name, doc in docs[:n_docs]:
        q = rng.choice(_DOC_QUESTIONS).format(name=f"`{name}`")
        msgs = [
            {"role": "system", "content": CHAT_SYSTEM},
            {"role": "user", "content": q},
            {"role": "assistant", "content": doc},
        ]
        out.append(("docstrings", tokenizer.apply_chat_template(msgs, tokenize=False)))
    for i in range(n - n_docs):
        q = questions[i % len(questions)]
        msgs = [{"role": "system", "content": CHAT_SYSTEM}, {"role": "user", "content": q}]
        out.append(("questions", tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)))
    rng.shuffle(out)
    return out
