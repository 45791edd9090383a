"""The pass/fail lines every interop client prints: `ok <name>` or `FAIL <name>: why`;
`failures()` is the exit code (capped, so a shell sees a number it can test)."""

_failures = 0


def check(name: str, ok: bool, why: str = "") -> None:
    global _failures
    if ok:
        print(f"ok   {name}")
    else:
        _failures += 1
        print(f"FAIL {name}: {why}")


def failures() -> int:
    return min(_failures, 100)
