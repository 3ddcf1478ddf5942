"""Training prompts for the EAGLE head: built from templates, disjoint from every eval set.

EAGLE trains its head on the target's own answers (self-distillation), so
only the *prompts* have to come from somewhere. Downloading ShareGPT is not
an option offline, and reusing benchmark questions would leak the test set,
so the prompts are composed here from task templates and subject lists that
span the benchmark styles (chat, writing, code, arithmetic, summarising,
factual questions). ``build_prompts`` drops any prompt that equals a turn of
a shipped question file, and the tests check that none is left.
"""

from __future__ import annotations

import ast
import random

__all__ = ["build_prompts", "source_prompts"]

_SUBJECTS = [
    "volcanoes",
    "honeybees",
    "the printing press",
    "black holes",
    "coral reefs",
    "the Roman Empire",
    "jazz music",
    "photosynthesis",
    "electric cars",
    "the water cycle",
    "chess openings",
    "the human heart",
    "solar panels",
    "ancient Egypt",
    "machine learning",
    "rainforests",
    "the stock market",
    "vaccines",
    "the Moon landing",
    "recycling",
    "earthquakes",
    "the Renaissance",
    "coffee",
    "tides",
    "the internet",
    "dinosaurs",
    "glaciers",
    "bread baking",
    "the Olympic Games",
    "penguins",
    "wind turbines",
    "the Silk Road",
    "sleep",
    "bicycles",
    "the immune system",
    "origami",
    "deserts",
    "lighthouses",
    "public libraries",
    "tea ceremonies",
]
_WRITING = [
    "Write a short poem about {s}.",
    "Write a friendly email inviting a colleague to a talk on {s}.",
    "Write a two-paragraph story for children about {s}.",
    "Describe {s} to someone who has never heard of it.",
    "Give me three fun facts about {s}.",
    "Write a persuasive paragraph on why schools should teach {s}.",
    "Draft a short speech opening a museum exhibition on {s}.",
    "Write a haiku about {s}.",
]
_QA = [
    "What is the most important thing to know about {s}?",
    "How would you explain {s} to a ten-year-old?",
    "What are the main advantages and disadvantages of {s}?",
    "Why do people find {s} interesting?",
    "List five questions a student might ask about {s}.",
    "What is a common misconception about {s}?",
    "Summarize the history of {s} in a few sentences.",
    "Compare {s} with {t} in a short paragraph.",
]
_CODE_TASKS = [
    "reverses a string",
    "checks whether a number is prime",
    "counts the vowels in a sentence",
    "returns the largest element of a list",
    "merges two sorted lists",
    "computes the factorial of n",
    "removes duplicates from a list while keeping order",
    "converts Celsius to Fahrenheit",
    "checks whether a word is a palindrome",
    "returns the n-th Fibonacci number",
    "flattens a nested list",
    "counts word frequencies in a text",
    "computes the average of a list of numbers",
    "sorts a list of names by length",
]
_CODE = [
    "Write a Python function that {task}.",
    "Write a short JavaScript function that {task}.",
    "Explain step by step how to write a function that {task}.",
    "Write a Python function that {task}, with a docstring and a test.",
]
_MATH = [
    "A shop sells pencils at {a} cents each. How much do {b} pencils cost in dollars?",
    "Tom has {a} apples and gives {b} to his friend. He then buys {c} more. How many apples does he have?",
    "A train travels {a} km in {b} hours. What is its average speed?",
    "What is {a} multiplied by {b}, minus {c}?",
    "A class has {a} students and {b} of them are girls. What fraction of the class are boys?",
    "If a rectangle is {a} cm long and {b} cm wide, what are its area and perimeter?",
]
_SUMMARY = "Summarize the following text in one sentence:\n{text}"
_TEXTS = [
    "The town council met on Monday to discuss the new park. Residents asked for more trees, a playground and "
    "benches near the pond. The council agreed to publish a plan next month and to hold a public vote in the spring.",
    "Researchers tested a new battery design that charges in ten minutes. In the lab it kept most of its capacity "
    "after a thousand cycles, but the team warned that making it cheaply at scale is still years away.",
    "The bakery on Main Street is closing after forty years. The owners said rising rents and fewer customers made it "
    "hard to continue, and they thanked the neighbourhood for decades of support.",
    "A local volunteer group cleaned three kilometres of river bank on Saturday, collecting over two hundred kilograms "
    "of rubbish. The organisers hope to make the event monthly and to involve nearby schools.",
]


def build_prompts(count: int, *, seed: int = 0, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """``count`` distinct prompts (deterministic for a seed), none of them in ``exclude``."""
    rng = random.Random(seed)
    pool: set[str] = set()
    for template in _WRITING + _QA:
        for subject in _SUBJECTS:
            other = rng.choice([s for s in _SUBJECTS if s != subject])
            pool.add(template.format(s=subject, t=other))
    pool.update(template.format(task=task) for template in _CODE for task in _CODE_TASKS)
    for _ in range(200):
        a, b, c = rng.randint(2, 90), rng.randint(2, 40), rng.randint(2, 30)
        pool.add(rng.choice(_MATH).format(a=a, b=b, c=c))
    pool.update(_SUMMARY.format(text=text) for text in _TEXTS)
    prompts = sorted(pool - set(exclude))
    rng.shuffle(prompts)
    if count > len(prompts):
        raise ValueError(f"only {len(prompts)} distinct training prompts available, asked for {count}")
    return prompts[:count]


_SOURCE_TASKS = [
    "Summarize the following text in one or two sentences:\n\n{p}",
    "Explain this passage to a beginner, in plain words:\n\n{p}",
    "Write three quiz questions, with their answers, about this text:\n\n{p}",
    "Rewrite this paragraph in a friendly, conversational tone:\n\n{p}",
    "What is the main point of the following passage? Answer briefly.\n\n{p}",
    "Write a short Python example that illustrates the following:\n\n{p}",
]
_NAME_TASKS = [
    "What does Python's `{m}.{f}` do? Explain with a short example.",
    "When would I use `{f}` from Python's `{m}` module? Give a small example.",
]


def _prose(paragraph: str) -> bool:
    """A docstring paragraph that reads as prose: long enough, mostly letters, no doctest or table."""
    letters = sum(c.isalpha() or c.isspace() for c in paragraph)
    return 200 <= len(paragraph) <= 700 and letters / len(paragraph) > 0.85 and ">>>" not in paragraph


def _documented_functions(source: str) -> list[str]:
    """Public module-level functions that have a docstring."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_") and ast.get_docstring(node)
    ]


def source_prompts(
    count: int,
    *,
    seed: int = 0,
    exclude: set[str] | frozenset[str] = frozenset(),
    sources: tuple[str, ...] = ("stdlib", "torch"),
) -> list[str]:
    """``count`` prompts built on the documentation of pinned Python sources, none of them in ``exclude``.

    Why: answers to ``build_prompts``' templates all look alike, and a head
    trained on them alone predicted 70% of held-out answers to the *same*
    templates but 28% of answers to EAGLE's questions. Here every prompt
    quotes a different docstring paragraph (or names a different function)
    of the standard library or the pinned ``torch``, the same on every
    machine with the same pins: summaries, explanations, rewrites, quizzes,
    examples. At most one prompt per file, files in a seeded order.
    """
    from ..corpus import candidate_files, docstrings, source_roots

    rng = random.Random(seed)
    files = [(root, path) for root in source_roots(sources).values() for path in candidate_files(root)]
    files = [(root, path) for root, path in files if path.suffix == ".py"]
    rng.shuffle(files)
    prompts: list[str] = []
    seen = set(exclude)
    for root, path in files:
        if len(prompts) >= count:
            break
        source = path.read_text(encoding="utf-8", errors="ignore")
        module = ".".join((root.name,) * (root.name != "lib") + path.relative_to(root).with_suffix("").parts)
        functions = _documented_functions(source)
        if functions and len(prompts) % 4 == 3:
            prompt = rng.choice(_NAME_TASKS).format(m=module.removesuffix(".__init__"), f=rng.choice(functions))
        else:
            paragraphs = [p.strip() for p in docstrings(source).split("\n\n") if _prose(p.strip())]
            if not paragraphs:
                continue
            prompt = rng.choice(_SOURCE_TASKS).format(p=rng.choice(paragraphs))
        if prompt not in seen:
            seen.add(prompt)
            prompts.append(prompt)
    if len(prompts) < count:
        raise ValueError(f"only {len(prompts)} source prompts available, asked for {count}")
    return prompts
