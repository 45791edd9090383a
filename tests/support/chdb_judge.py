"""ClickHouse's own parser (PyPI chdb, current ClickHouse in-process) as the judge of the
gateway's SQL guard. Reads JSON lines {"sql": ...} on stdin and answers one JSON line each:
  {"formatted": <formatQuerySingleLine>, "functions": [names from EXPLAIN AST] | null,
   "clauses": [SETTINGS / FORMAT / INTO OUTFILE, as ClickHouse's formatter writes them],
   "settings": [names set in every SETTINGS clause, from the formatter's text],
   "table_functions": [functions ClickHouse reads as tables: under TableExpression, or the
                       target of INSERT INTO FUNCTION / CREATE TABLE ... AS] | null,
   "engines": [table and database engines of Storage definitions] | null,
   "sources": [[dictionary source, [its keys]]] | null}
(the three nullable ones are null when EXPLAIN AST fails)
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


SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# AST nodes whose direct `Function` child is read as a table, an engine or a source.
TABLE_PARENTS = ("TableExpression", "InsertQuery", "CreateQuery")
SOURCE = re.compile(r"^\s*FunctionWithKeyValueArguments\s+(\S+)")
SOURCE_TEXT = re.compile(r"\bSOURCE\((\w+)\(([^()]*)\)\)")


def settings_names(bare):
    """Every name of every `SETTINGS name [= value], ...` list in the formatter's text, and
    the text without those lists (what EXPLAIN AST can still read when a setting is unknown)."""
    names, kept, last = [], [], 0
    for m in re.finditer(r"\bSETTINGS ", bare):
        if m.start() < last:
            continue
        i = m.end()
        while True:
            name = SETTING_NAME.match(bare, i)
            if not name:
                break
            names.append(name.group(0))
            i = name.end()
            if bare.startswith(" = ", i):
                i += 3
                depth = 0
                while i < len(bare):
                    c = bare[i]
                    if c in "([{":
                        depth += 1
                    elif c in ")]}":
                        if depth == 0:
                            break
                        depth -= 1
                    elif depth == 0 and c in ", ":
                        break
                    i += 1
            if bare.startswith(", ", i):
                i += 2
                continue
            break
        kept.append(bare[last:m.start()])
        last = i
    kept.append(bare[last:])
    return names, "".join(kept)


def ast_reading(ast, bare):
    """Table functions, engines and dictionary sources, by each node's parent."""
    tables, engines, sources = [], [], []
    stack = []  # (indent, node text)
    for line in ast:
        indent = len(line) - len(line.lstrip(" "))
        text = line.strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        function = FUNCTION.match(line)
        if function:
            if parent.startswith(TABLE_PARENTS):
                tables.append(function.group(1))
            elif parent.startswith("Storage definition"):
                engines.append(function.group(1))
        source = SOURCE.match(line)
        if source:
            sources.append(source.group(1))
        stack.append((indent, text))
    keyed = []
    texts = SOURCE_TEXT.findall(bare)
    for name in sources:
        keys = next(([w for w in args.split()[0::2]] for n, args in texts if n.lower() == name.lower()), None)
        keyed.append([name, keys if keys is not None else ["<unread>"]])
    return tables, engines, keyed


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
    out = {"formatted": formatted, "functions": None, "clauses": [n for n, r in CLAUSES if r.search(bare)],
           "settings": [], "table_functions": None, "engines": None, "sources": None}
    out["settings"], without_settings = settings_names(bare)
    try:
        ast = str(s.query("EXPLAIN AST " + formatted, "TSVRaw")).splitlines()
    except Exception:
        # EXPLAIN applies the query's SETTINGS and fails on unknown ones: fall back to the
        # formatter's calls, always written `name(` or `` `name`( ``.
        calls = CALL.finditer(QUOTED.sub(lambda m: "''" if m.group(0)[0] == "'" else m.group(0), formatted))
        out["functions"] = [m.group(1).strip("`") for m in calls]
        # The structure without the SETTINGS lists: literals are '' there, which changes
        # no table function, engine or source name.
        try:
            ast = str(s.query("EXPLAIN AST " + without_settings, "TSVRaw")).splitlines()
            out["table_functions"], out["engines"], out["sources"] = ast_reading(ast, bare)
        except Exception:
            pass
        return out
    out["functions"] = [m.group(1) for m in map(FUNCTION.match, ast) if m]
    out["table_functions"], out["engines"], out["sources"] = ast_reading(ast, bare)
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
