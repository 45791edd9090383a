"""The pass/fail lines every interop client prints: `ok <name>` or `FAIL <name>: why`;
`failures()` is the exit code (capped, so a shell sees a number it can test)."""

import asyncio

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


def run_checks(checks) -> int:
    """Runs a client's checks (a coroutine); a transport or protocol failure is a failed
    check with its reason. Returns the exit code."""
    try:
        asyncio.run(checks)
    except Exception as e:
        while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
            e = e.exceptions[0]
        check("session", False, f"{type(e).__name__}: {e}")
    return failures()
