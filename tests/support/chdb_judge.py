"""ClickHouse's own parser (PyPI chdb, current ClickHouse in-process) as the judge of the
gateway's SQL guard. Reads JSON lines {"sql": ...} on stdin and answers one JSON line each:
  {"formatted": <formatQuerySingleLine>, "functions": [names from EXPLAIN AST] | null,
   "clauses": [SETTINGS / FORMAT / INTO OUTFILE, as ClickHouse's formatter writes them]}
or, when ClickHouse does not parse the query,
  {"error": <first line>, "multi": <ClickHouse saw more than one statement>}.
"""
import json
import os
import re
import sys
import tempfile

try:
    from chdb import session
except ImportError:
    print(json.dumps({"fatal": "chdb is not installed in this python: run scripts/deps.sh chdb"}), flush=True)
    sys.exit(3)

FUNCTION = re.compile(r"^\s*Function (.+?)(?: \(alias .*\))?(?: \(children \d+\))?$")
# The formatter's own literals and quoted identifiers, which may hold any word.
QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|`(?:[^`\\]|\\.)*`")
CALL = re.compile(r"([A-Za-z_$][A-Za-z0-9_$]*|`(?:[^`\\]|\\.)*`)\(")
# The formatter writes clause keywords in upper case; identifiers keep their case.
CLAUSES = [("INTO OUTFILE", re.compile(r"\bINTO OUTFILE\b")), ("FORMAT", re.compile(r"\bFORMAT \w")),
           ("SETTINGS", re.compile(r"\bSETTINGS \w+ = "))]


def literal(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def judge(s, sql):
    try:
        formatted = str(s.query("SELECT formatQuerySingleLine(" + literal(sql) + ")", "TSVRaw"))
    except Exception as e:  # chdb raises RuntimeError with ClickHouse's message
        message = str(e)
        return {
            "error": (message.splitlines() or [""])[0][:300],
            "multi": "Multi-statements are not allowed" in message,
        }
    formatted = formatted.rstrip("\n")
    # Literals become '' and quoted identifiers a plain word (a format name may be quoted).
    bare = QUOTED.sub(lambda m: "''" if m.group(0)[0] == "'" else "quoted_identifier", formatted)
    out = {"formatted": formatted, "functions": None, "clauses": [n for n, r in CLAUSES if r.search(bare)]}
    try:
        ast = str(s.query("EXPLAIN AST " + formatted, "TSVRaw")).splitlines()
    except Exception:
        # EXPLAIN applies the query's SETTINGS and fails on unknown ones: fall back to the
        # formatter's calls, always written `name(` or `` `name`( ``.
        calls = CALL.finditer(QUOTED.sub(lambda m: "''" if m.group(0)[0] == "'" else m.group(0), formatted))
        out["functions"] = [m.group(1).strip("`") for m in calls]
        return out
    out["functions"] = [m.group(1) for m in map(FUNCTION.match, ast) if m]
    if any(line.strip() == "Set" for line in ast) and "SETTINGS" not in out["clauses"]:
        out["clauses"].append("SETTINGS")
    return out


def main():
    # Nothing here executes a query, but a stray INTO OUTFILE must not land in the checkout.
    os.chdir(tempfile.mkdtemp(prefix="chmcp-chdb-"))
    s = session.Session()
    # clickhouse-local (and so chdb) reads `file` as `SELECT file`; a server does not.
    s.query("SET implicit_select = 0")
    for line in sys.stdin:
        print(json.dumps(judge(s, json.loads(line)["sql"])), flush=True)


main()
