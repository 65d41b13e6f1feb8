"""docs/architecture.md's examples of what the program prints, kept true to the program."""

from __future__ import annotations

import pytest

from components.config import build_stack_config, project_values, stack_file_config
from components.model.settings import ConfigError
from tests.readme_tables import doc

PAGE = "docs/architecture.md"


def test_the_bad_config_example_is_what_the_program_says() -> None:
    text = doc(PAGE)
    start = text.index("A bad config stops the program with every problem at once, for example:")
    block = text[text.index("```\n", start) + 4:]
    shown = block[:block.index("```")].strip().splitlines()
    # The example's config: prod with parallelism misspelt (its value kept) and too few workers.
    values = project_values(stack_file_config("prod"))
    values.update({"paralelism": values["parallelism"], "workers": 20})
    with pytest.raises(ConfigError) as refused:
        build_stack_config(values, stack="prod", location="westeurope")
    said = str(refused.value).splitlines()
    assert len(shown) == len(said), f"{PAGE}: one line per problem"
    for example, line in zip(shown, said, strict=True):
        assert line.startswith(example.removesuffix("...").rstrip()), f"{PAGE}: {example!r} is not {line!r}"
