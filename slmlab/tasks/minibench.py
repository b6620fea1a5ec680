"""minibench: 20 simple Python functions with unit tests (seed 003's mini benchmark: add,
factorial, fibonacci, is_prime, ...), written here. HumanEval-shaped: the prompt is a signature and a
docstring, the completion is the body, `check(candidate)` runs the tests. Small enough that a
from-scratch model can be scored on it in seconds; easy enough that a working model should pass most.
"""

from __future__ import annotations

from slmlab.tasks.base import Task
from slmlab.tasks.humaneval import HUMANEVAL_STOPS  # HumanEval-shaped, so HumanEval's stops
from slmlab.tasks.registry import Benchmark, register

# (name, signature, docstring, reference body, assertions on `candidate`)
_TASKS = [
    ("add", "a, b", "Return the sum of a and b.", "return a + b",
     ["candidate(2, 3) == 5", "candidate(-1, 1) == 0", "candidate(0, 0) == 0", "candidate(2.5, 0.5) == 3.0"]),
    ("subtract", "a, b", "Return a minus b.", "return a - b",
     ["candidate(5, 3) == 2", "candidate(3, 5) == -2", "candidate(0, 0) == 0"]),
    ("multiply", "a, b", "Return the product of a and b.", "return a * b",
     ["candidate(3, 4) == 12", "candidate(-2, 5) == -10", "candidate(7, 0) == 0"]),
    ("factorial", "n", "Return n! for a non-negative integer n (0! is 1).",
     "result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result",
     ["candidate(0) == 1", "candidate(1) == 1", "candidate(5) == 120", "candidate(10) == 3628800"]),
    ("fibonacci", "n", "Return the n-th Fibonacci number, with fibonacci(0) == 0 and fibonacci(1) == 1.",
     "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
     ["candidate(0) == 0", "candidate(1) == 1", "candidate(2) == 1", "candidate(10) == 55", "candidate(20) == 6765"]),
    ("is_prime", "n", "Return True if n is a prime number, False otherwise.",
     "if n < 2:\n        return False\n    i = 2\n    while i * i <= n:\n        if n % i == 0:\n            return False\n        i += 1\n    return True",
     ["candidate(2) is True", "candidate(17) is True", "candidate(1) is False", "candidate(0) is False",
      "candidate(21) is False", "candidate(97) is True"]),
    ("reverse_string", "s", "Return the string s reversed.", "return s[::-1]",
     ["candidate('abc') == 'cba'", "candidate('') == ''", "candidate('racecar') == 'racecar'"]),
    ("is_palindrome", "s", "Return True if the string s reads the same forwards and backwards.",
     "return s == s[::-1]",
     ["candidate('level') is True", "candidate('hello') is False", "candidate('') is True", "candidate('ab') is False"]),
    ("max_of_list", "numbers", "Return the largest number in a non-empty list.",
     "return max(numbers)", ["candidate([1, 5, 3]) == 5", "candidate([-4, -2, -9]) == -2", "candidate([7]) == 7"]),
    ("min_of_list", "numbers", "Return the smallest number in a non-empty list.",
     "return min(numbers)", ["candidate([4, 1, 3]) == 1", "candidate([-4, -2, -9]) == -9", "candidate([7]) == 7"]),
    ("sum_list", "numbers", "Return the sum of the numbers in the list (0 for an empty list).",
     "return sum(numbers)", ["candidate([1, 2, 3]) == 6", "candidate([]) == 0", "candidate([-1, 1, 10]) == 10"]),
    ("average", "numbers", "Return the arithmetic mean of a non-empty list of numbers.",
     "return sum(numbers) / len(numbers)",
     ["candidate([1, 2, 3]) == 2", "candidate([5]) == 5", "abs(candidate([1, 2]) - 1.5) < 1e-9"]),
    ("count_vowels", "s", "Return how many vowels (a, e, i, o, u, either case) the string s contains.",
     "return sum(1 for c in s.lower() if c in 'aeiou')",
     ["candidate('hello') == 2", "candidate('AEIOU') == 5", "candidate('xyz') == 0", "candidate('') == 0"]),
    ("is_even", "n", "Return True if the integer n is even.", "return n % 2 == 0",
     ["candidate(4) is True", "candidate(7) is False", "candidate(0) is True", "candidate(-2) is True"]),
    ("gcd", "a, b", "Return the greatest common divisor of two positive integers.",
     "while b:\n        a, b = b, a % b\n    return a",
     ["candidate(12, 18) == 6", "candidate(7, 13) == 1", "candidate(100, 10) == 10"]),
    ("power", "base, exponent", "Return base raised to the non-negative integer exponent.",
     "return base ** exponent", ["candidate(2, 10) == 1024", "candidate(5, 0) == 1", "candidate(3, 3) == 27"]),
    ("celsius_to_fahrenheit", "celsius", "Convert a temperature from Celsius to Fahrenheit.",
     "return celsius * 9 / 5 + 32",
     ["candidate(0) == 32", "candidate(100) == 212", "abs(candidate(-40) - (-40)) < 1e-9"]),
    ("square_list", "numbers", "Return a new list with the square of each number.",
     "return [x * x for x in numbers]", ["candidate([1, 2, 3]) == [1, 4, 9]", "candidate([]) == []", "candidate([-2]) == [4]"]),
    ("remove_duplicates", "items", "Return the items without duplicates, keeping the first occurrence of each in order.",
     "seen = set()\n    result = []\n    for x in items:\n        if x not in seen:\n            seen.add(x)\n            result.append(x)\n    return result",
     ["candidate([1, 2, 1, 3, 2]) == [1, 2, 3]", "candidate([]) == []", "candidate(['a', 'a']) == ['a']"]),
    ("count_words", "text", "Return the number of words in text, words being separated by whitespace.",
     "return len(text.split())",
     ["candidate('hello world') == 2", "candidate('') == 0", "candidate('  one   two three ') == 3"]),
]  # fmt: skip


def load_minibench() -> list[Task]:
    tasks = []
    for i, (name, args, doc, body, checks) in enumerate(_TASKS):
        prompt = f'def {name}({args}):\n    """{doc}"""\n'
        test = "def check(candidate):\n" + "".join(f"    assert {c}\n" for c in checks)
        tasks.append(Task(task_id=f"minibench/{i}", prompt=prompt, test=test, entry_point=name,
                          reference=f"    {body}\n", benchmark="minibench"))  # fmt: skip
    return tasks


register(Benchmark(names=("minibench",), load=lambda data_dir: load_minibench(), stops=HUMANEVAL_STOPS))
