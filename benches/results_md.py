"""benches/RESULTS.md is shared by every comparison script: each owns one section,
delimited by `<!-- NAME:begin -->` / `<!-- NAME:end -->`, and rewrites only that."""

import os

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "RESULTS.md")
HEADER = "# Benchmark results\n\nEach section is rewritten by the script it names.\n"


def write_section(name, body):
    """Replaces (or appends) section `name` of benches/RESULTS.md with `body`, atomically."""
    text = open(PATH).read() if os.path.exists(PATH) else HEADER
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body}\n{end}"
    if begin in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(PATH + ".tmp", "w") as f:
        f.write(text)
    os.replace(PATH + ".tmp", PATH)
