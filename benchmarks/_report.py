"""Markdown tables for the benchmark scripts."""


def table(title: str, header: tuple[str, ...], rows: list[tuple]) -> str:
    """A titled markdown table with columns padded to their widest cell."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)) + " |"
            for r in rows]
    return "\n".join([f"\n{title}", line, sep, *body])
