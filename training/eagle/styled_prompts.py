"""Training prompts in the benchmark's five styles, composed here: none is, or copies, an eval question.

Why: the Qwen head predicted 52% of held-out answers to its own training
prompts but 45% of the target's answers to EAGLE's questions. Those come in
five shapes the templated and source prompts hardly cover: multi-turn-style
chat and role play (MT-Bench), "Complete the code I provided." over a typed
stub with doctests (HumanEval), multi-step word problems with numbers
(GSM8K), short lower-case factual questions (Natural Questions) and
"Summarize:" over a long article (CNN/DM). So each prompt here takes one of
those shapes, with its content drawn from lists and seeded numbers in this
file, or, for the articles, from the Python reference manual that ships with
the interpreter (``pydoc_data.topics``: prose, versioned with Python). The
target answers them itself (self-distillation), so only the shape matters.
"""

from __future__ import annotations

import random
import re

__all__ = ["styled_prompts"]

_SUBJECTS = [
    "volcanoes", "city gardens", "the printing press", "electric trains", "deep-sea fish", "the violin",
    "street food", "renewable energy", "ancient Greece", "cloud computing", "migrating birds", "board games",
    "the Great Wall of China", "first aid", "public transport", "mushrooms", "space telescopes", "podcasts",
    "the Amazon river", "remote work", "knitting", "the human brain", "wildfires", "bridges", "chocolate",
    "the Industrial Revolution", "robotics", "yoga", "lighthouses", "the Arctic", "hip-hop", "time zones",
    "microplastics", "the Olympic marathon", "sourdough bread", "cryptography", "elephants", "sailing",
    "urban planning", "the periodic table", "comic books", "hydropower", "the Vikings", "video game design",
    "honey", "climate models", "photography", "the Nile", "3D printing", "learning a second language",
]  # fmt: skip
_ROLES = [
    "a ship's captain", "a museum guide", "a pastry chef", "a detective", "a travel agent", "a personal trainer",
    "a medieval knight", "a chemistry teacher", "a librarian", "a startup founder", "a park ranger", "a news anchor",
    "an astronaut", "a gardener", "a job interviewer", "a tour guide", "a sports coach", "a veterinarian",
]  # fmt: skip
_CHAT = [
    "Imagine you are {r}. Describe a typical day at work in a few paragraphs.",
    "Pretend to be {r} and give a beginner five tips about {s}.",
    "You are {r}. Write a short speech to your team about {s}.",
    "Act as {r}. A visitor asks you what makes {s} special. What do you say?",
    "Compose an engaging blog post about a weekend spent learning about {s}.",
    "Draft a polite email asking a colleague for feedback on a report about {s}. Keep it short.",
    "Write a persuasive essay introduction arguing that every town should care about {s}.",
    "Describe {s} in exactly four sentences, each starting with a different letter.",
    "Give a step-by-step plan to learn the basics of {s} in one month.",
    "What would change in everyday life if {s} suddenly disappeared? Reason it through.",
    "Write a short dialogue between two friends who disagree about {s}.",
    "Explain the pros and cons of {s} and end with a one-line recommendation.",
    "Create a five-question multiple-choice quiz about {s}, with the answers at the end.",
    "Write a product description for a beginner's guide to {s}.",
]
_NAMES = ["Maya", "Liam", "Sofia", "Noah", "Aisha", "Lucas", "Elena", "Omar", "Grace", "Ravi", "Chloe", "Mateo"]
_ITEMS = ["notebooks", "apples", "tickets", "plants", "cupcakes", "marbles", "books", "shirts", "candles", "pens"]
_WORD_PROBLEMS = [
    "{n} buys {a} {i} at ${b} each and pays with a ${c} bill. How much change does {n} get?",
    "{n} reads {a} pages a day for {b} days, then {c} pages a day for {d} days. How many pages did {n} read?",
    "A shop had {c} {i}. It sold {a} on Monday and twice as many on Tuesday. How many {i} are left?",
    "{n} saves ${a} every week. After {b} weeks {n} spends ${d} on a gift. How much money does {n} have left?",
    "There are {a} rows of chairs with {b} chairs in each row. If {d} chairs are taken, how many are free?",
    "{n} is {b} years old. {m} is {a} years older than twice {n}'s age. How old will {m} be in {d} years?",
    "A recipe uses {a} cups of flour for {b} cookies. How many cups of flour are needed for {e} cookies?",
    "{n} and {m} share {c} {i} in the ratio {a}:{b}. How many {i} does {m} get?",
    "A car uses {a} liters of fuel per 100 km. Fuel costs ${b} per liter. How much does a {e}-km trip cost?",
    "{n} works {a} hours a week at ${b} an hour and gets a {d}% raise. What are {n}'s weekly earnings now?",
    "A tank holds {c} liters. It is filled at {a} liters a minute and leaks {b} liters a minute. "
    "How many minutes until it is full?",
    "{n} runs {a} km on weekdays and {b} km on each weekend day. How many km does {n} run in {d} weeks?",
]
_STUBS = [
    ("count_upper", "s: str", "int", "Return how many upper-case letters the string s contains.",
     [("'Hello World'", "2"), ("'abc'", "0")]),
    ("sum_of_squares", "numbers: list", "int", "Return the sum of the squares of the numbers in the list.",
     [("[1, 2, 3]", "14"), ("[]", "0")]),
    ("is_sorted", "values: list", "bool", "Return True if the list is sorted in ascending order.",
     [("[1, 2, 2, 5]", "True"), ("[3, 1]", "False")]),
    ("second_largest", "numbers: list", "int", "Return the second largest distinct number in the list.",
     [("[4, 1, 7, 7]", "4"), ("[10, 20]", "10")]),
    ("run_length", "text: str", "str", "Encode the text with run-length encoding, e.g. 'aaab' becomes 'a3b1'.",
     [("'aaab'", "'a3b1'"), ("'xy'", "'x1y1'")]),
    ("digits_product", "n: int", "int", "Return the product of the odd digits of n, or 0 if all digits are even.",
     [("235", "15"), ("24", "0")]),
    ("rotate_left", "items: list, k: int", "list", "Rotate the list k places to the left.",
     [("[1, 2, 3, 4], 1", "[2, 3, 4, 1]"), ("[1, 2], 4", "[1, 2]")]),
    ("common_prefix", "words: list", "str", "Return the longest prefix shared by all the words.",
     [("['flow', 'flower', 'flight']", "'fl'"), ("['a', 'b']", "''")]),
    ("pair_sum_zero", "numbers: list", "bool", "Return True if two different elements of the list sum to zero.",
     [("[1, -1, 3]", "True"), ("[1, 2]", "False")]),
    ("title_case", "sentence: str", "str", "Capitalise the first letter of every word in the sentence.",
     [("'hello big world'", "'Hello Big World'")]),
    ("count_primes", "n: int", "int", "Return how many prime numbers are smaller than n.",
     [("10", "4"), ("2", "0")]),
    ("running_max", "numbers: list", "list", "Return the running maximum of the list.",
     [("[1, 3, 2, 5]", "[1, 3, 3, 5]")]),
    ("vowel_words", "text: str", "list", "Return the words of the text that start with a vowel, in order.",
     [("'an owl ate bread'", "['an', 'owl', 'ate']")]),
    ("gcd_list", "numbers: list", "int", "Return the greatest common divisor of all the numbers.",
     [("[12, 18, 24]", "6")]),
    ("balanced", "brackets: str", "bool", "Return True if every '(' in the string has a matching ')'.",
     [("'(()())'", "True"), ("')('", "False")]),
    ("chunk", "items: list, size: int", "list", "Split the list into consecutive chunks of the given size.",
     [("[1, 2, 3, 4, 5], 2", "[[1, 2], [3, 4], [5]]")]),
    ("to_binary", "n: int", "str", "Return the binary representation of a non-negative integer as a string.",
     [("5", "'101'"), ("0", "'0'")]),
    ("middle_char", "word: str", "str", "Return the middle character, or the middle two if the length is even.",
     [("'abc'", "'b'"), ("'abcd'", "'bc'")]),
]  # fmt: skip
_QUESTIONS = [
    "who invented {x}?", "when was {x} first introduced?", "where does the word {x} come from?",
    "what is {x} made of?", "how does {x} work?", "why is {x} important?", "who uses {x} the most?",
    "what is the difference between {x} and {y}?", "how old is the oldest known {x}?",
]  # fmt: skip
_THINGS = [
    "the telescope", "the bicycle", "paper money", "the compass", "the thermometer", "the piano", "glass",
    "the light bulb", "the stethoscope", "concrete", "the parachute", "the zipper", "the calculator", "soap",
    "the microscope", "the umbrella", "the refrigerator", "the pencil", "the sewing machine", "the radio",
]  # fmt: skip
_ARTICLE_WORDS = (180, 420)


def _word_problem(rng: random.Random) -> str:
    n, m = rng.sample(_NAMES, 2)
    a, b, d = rng.randint(2, 12), rng.randint(2, 9), rng.randint(2, 8)
    c = rng.randint(a * b + 5, a * b + 120)
    return rng.choice(_WORD_PROBLEMS).format(n=n, m=m, i=rng.choice(_ITEMS), a=a, b=b, c=c, d=d, e=b * rng.randint(2, 6))


def _stub(entry: tuple, rng: random.Random) -> str:
    name, args, returns, doc, examples = entry
    quote = rng.choice(['"""', "'''"])
    lines = [f"def {name}({args}) -> {returns}:", f"    {quote}{doc}"]
    for call, result in examples:
        lines += [f"    >>> {name}({call})", f"    {result}"]
    return "Complete the code I provided.\n\n" + "\n".join(lines + [f"    {quote}", ""])


def _articles() -> list[str]:
    """Prose from the reference manual's topics, cut at paragraph ends into articles of 180-420 words."""
    from pydoc_data.topics import topics

    articles = []
    for key in sorted(topics):
        paragraphs = [" ".join(p.split()) for p in topics[key].split("\n\n")]
        words: list[str] = []
        for paragraph in paragraphs:
            if len(paragraph) > 120 and not re.search(r"[{}=<>]|::|\*\*\*", paragraph):
                words += paragraph.split()
            if len(words) >= _ARTICLE_WORDS[0]:
                articles.append(" ".join(words[: _ARTICLE_WORDS[1]]))
                words = []
    return articles


def styled_prompts(count: int, *, seed: int = 0, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """``count`` distinct prompts, the five styles in turn (deterministic for a seed), none of them in ``exclude``."""
    rng = random.Random(seed)
    roles = {t: _ROLES if "{r}" in t else _ROLES[:1] for t in _CHAT}  # a template without a role: once per subject
    chat = [t.format(r=r, s=s) for t in _CHAT for r in roles[t] for s in _SUBJECTS]
    stubs = [_stub(entry, rng) for entry in _STUBS for _ in range(2)]
    questions = [
        q.format(x=x, y=rng.choice([t for t in _THINGS if t != x])).capitalize() for q in _QUESTIONS for x in _THINGS
    ]
    articles = [f"Summarize: {article}" for article in _articles()]
    pools = [chat, sorted(set(stubs)), questions, articles]
    for pool in pools:
        rng.shuffle(pool)
    styles = [iter(pool) for pool in pools]
    prompts: list[str] = []
    seen = set(exclude)
    turn = 0
    while len(prompts) < count and turn < 50 * count:
        kind = turn % 5
        turn += 1
        prompt = _word_problem(rng) if kind == 4 else next(styles[kind], None)
        if prompt is not None and prompt not in seen:
            seen.add(prompt)
            prompts.append(prompt)
    if len(prompts) < count:
        raise ValueError(f"only {len(prompts)} styled prompts available, asked for {count}")
    return prompts
