"""A visitor's prompt: the instruction checked with the Edit tab's rules, its language and rough category."""

from __future__ import annotations

from dataclasses import dataclass

from workbench.instructions import category_of, instruction_language, instruction_problem


@dataclass(frozen=True)
class Prompt:
    instruction: str
    language: str
    category: str


def check_prompt(instruction: str | None) -> Prompt:
    """The stripped instruction with its language and category; ValueError with the Edit tab's message."""
    problem = instruction_problem(instruction)
    if problem is not None:
        raise ValueError(problem)
    text = (instruction or "").strip()
    return Prompt(text, instruction_language(text), category_of(text))
