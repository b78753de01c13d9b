"""SQL is only ever static text: a static scan of the C sources.

SECURITY.md promises that no SQL statement is built from strings at run
time: every statement is a string literal (or a `static const char q[]`
made only of literals and literal macros) prepared once and given its
values through bound parameters. This test keeps that promise true. It
scans lib/ fcgi/ worker/ wsd/ tools/ and fails when

  1. a call that compiles or runs SQL (sqlite3_prepare*, sqlite3_exec,
     db_stmt, and any function or macro that hands its own parameter to
     one of these, found to a fixed point: exec_simple, STMT, ...) gets an
     SQL argument that is not a literal, a literal-only const array or
     macro, or a `c ? A : B` of those;
  2. a formatting call (snprintf, xasprintf, buf_printf, ...) has a format
     string containing SQL keywords (SELECT, INSERT, UPDATE, DELETE,
     PRAGMA, ...), i.e. text that looks like SQL is being assembled.

The few reviewed exceptions are listed in ALLOWED with the reason each is
safe. The scanner is checked against bad snippets (test_scanner_*), so the
test can fail.
"""
import os
import re

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DIRS = ["lib", "fcgi", "worker", "wsd", "tools"]

# function name -> index of its SQL argument
BASE_SINKS = {
    "sqlite3_prepare": 1,
    "sqlite3_prepare_v2": 1,
    "sqlite3_prepare_v3": 1,
    "sqlite3_prepare16": 1,
    "sqlite3_prepare16_v2": 1,
    "sqlite3_prepare16_v3": 1,
    "sqlite3_exec": 1,
    "db_stmt": 1,
}
FORMATTERS = {
    "snprintf": 2, "sprintf": 1, "asprintf": 1, "vsnprintf": 2, "vasprintf": 1,
    "xasprintf": 0, "buf_printf": 1, "buf_vprintf": 1,
    "sqlite3_mprintf": 0, "sqlite3_snprintf": 2, "sqlite3_vmprintf": 0,
}
SQL_WORDS = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|PRAGMA|REPLACE|CREATE|DROP|ALTER|ATTACH|VACUUM)\b")

# (file, sink or formatter, argument text) -> why it is safe
ALLOWED = {
    ("lib/migrate.c", "snprintf", '"PRAGMA user_version = %d"'):
        "the only value is v + 1, an int the program computes from the compiled-in "
        "schema count; PRAGMA takes no bound parameters, so the number is formatted",
    ("lib/migrate.c", "sqlite3_exec", "pragma"):
        "the buffer filled by the allowed PRAGMA user_version = %d above",
    ("lib/migrate.c", "sqlite3_exec", "schema_sql[v]"):
        "the migrations: text of schema/*.sql compiled into the binary by schema/embed.sh",
}


def strip_comments(src):
    """Blanks out comments (keeping newlines and string literals)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", src[i:j]))
            i = j
        elif src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def call_args(src, open_paren):
    """Splits the arguments of the call whose '(' is at open_paren.
    Returns (list of stripped argument texts, index after ')')."""
    depth, i, start, args = 0, open_paren, open_paren + 1, []
    n = len(src)
    while i < n:
        c = src[i]
        if c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            i = j + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                args.append(src[start:i].strip())
                return args, i + 1
        elif c == "," and depth == 1:
            args.append(src[start:i].strip())
            start = i + 1
        i += 1
    return args, n


LITERAL_RE = re.compile(r'"(?:[^"\\\n]|\\.)*"')


def literal_only(expr, macros):
    """True when expr is string literals and literal-only macros, nothing else."""
    rest = LITERAL_RE.sub(" ", expr)
    for tok in rest.split():
        if tok not in macros:
            return False
    return bool(expr.strip())


def literal_macros(sources):
    """Names of #define macros whose body is only string literals (fixed point)."""
    defs = {}
    for src in sources:
        for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+(\w+)[ \t]+((?:.*\\\n)*.*)$", src, re.M):
            defs[m.group(1)] = m.group(2).replace("\\\n", " ")
    good = set()
    changed = True
    while changed:
        changed = False
        for name, body in defs.items():
            if name not in good and literal_only(body, good):
                good.add(name)
                changed = True
    return good


def const_arrays(src, macros):
    """Names of `[static] const char NAME[] = <literals>;` in src."""
    names = set()
    for m in re.finditer(r"\bconst\s+char\s+(\w+)\s*\[\s*\]\s*=\s*([^;]*);", src):
        if literal_only(m.group(2), macros):
            names.add(m.group(1))
    return names


# "const char *sql", "struct db *db": a parameter declaration, not an expression
DECL_RE = re.compile(r"^(?:(?:const|struct|unsigned|signed|volatile)\s+)*\w+[\s*]+\w+$")
FUNC_RE = re.compile(r"^(\w+)\(([^;{}]*)\)\s*\{", re.M)
MACRO_RE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)\(([^)]*)\)((?:.*\\\n)*.*)$", re.M)


def enclosing(src, pos):
    """(kind, name, [params]) of the function or function-like macro around pos."""
    for m in MACRO_RE.finditer(src):
        if m.start() <= pos < m.end():
            return "macro", m.group(1), [p.strip() for p in m.group(2).split(",")]
    best = None
    for m in FUNC_RE.finditer(src):
        if m.start() > pos:
            break
        best = m
    if best is None:
        return None, None, []
    params = []
    for p in best.group(2).split(","):
        ids = re.findall(r"\w+", p)
        if ids:
            params.append(ids[-1])
    return "func", best.group(1), params


def classify(expr, arrays, macros):
    expr = expr.strip()
    while expr.startswith("(") and expr.endswith(")"):
        expr = expr[1:-1].strip()
    if literal_only(expr, macros):
        return True
    if re.fullmatch(r"\w+", expr) and expr in arrays:
        return True
    m = re.fullmatch(r"(.+?)\?(.+):(.+)", expr, re.S)
    if m:
        return classify(m.group(2), arrays, macros) and classify(m.group(3), arrays, macros)
    return False


def scan(files):
    """files: {relative path: source}. Returns a list of violation strings."""
    srcs = {p: strip_comments(s) for p, s in files.items()}
    macros = literal_macros(srcs.values())
    sinks = dict(BASE_SINKS)
    violations = []
    # 1: SQL arguments, with wrappers found to a fixed point
    changed = True
    while changed:
        changed = False
        violations = []
        for path, src in srcs.items():
            arrays = const_arrays(src, macros)
            for name, idx in list(sinks.items()):
                for m in re.finditer(r"\b%s\s*\(" % re.escape(name), src):
                    # skip the definition (and prototypes) of the sink itself
                    line_start = src.rfind("\n", 0, m.start()) + 1
                    if m.start() == line_start and FUNC_RE.match(src, m.start()):
                        continue
                    args, _ = call_args(src, m.end() - 1)
                    if idx >= len(args):
                        continue
                    arg = args[idx]
                    if DECL_RE.match(arg):
                        continue  # a prototype, not a call
                    if classify(arg, arrays, macros):
                        continue
                    if (path, name, arg) in ALLOWED:
                        continue
                    kind, fname, params = enclosing(src, m.start())
                    if re.fullmatch(r"\w+", arg) and arg in params:
                        # a wrapper: its own callers must pass static SQL
                        if fname not in sinks:
                            sinks[fname] = params.index(arg)
                            changed = True
                        continue
                    line = src.count("\n", 0, m.start()) + 1
                    violations.append("%s:%d: %s(): SQL argument `%s` is not static text"
                                      % (path, line, name, arg))
    # 2: formats that assemble SQL
    for path, src in srcs.items():
        for name, idx in FORMATTERS.items():
            for m in re.finditer(r"\b%s\s*\(" % re.escape(name), src):
                args, _ = call_args(src, m.end() - 1)
                if idx >= len(args):
                    continue
                fmt = args[idx]
                text = "".join(s[1:-1] for s in LITERAL_RE.findall(fmt))
                if not SQL_WORDS.search(text):
                    continue
                if (path, name, fmt) in ALLOWED:
                    continue
                line = src.count("\n", 0, m.start()) + 1
                violations.append("%s:%d: %s() formats SQL text: %s" % (path, line, name, fmt))
    return violations


def tree_files():
    files = {}
    for d in DIRS:
        for base, _, names in os.walk(os.path.join(ROOT, d)):
            for n in names:
                if n.endswith((".c", ".h")):
                    p = os.path.join(base, n)
                    with open(p, encoding="utf-8", errors="replace") as f:
                        files[os.path.relpath(p, ROOT)] = f.read()
    return files


def test_sql_is_static_text():
    files = tree_files()
    assert any(p.startswith("lib/") for p in files), "no sources found under %s" % ROOT
    violations = scan(files)
    assert not violations, "SQL built at run time:\n" + "\n".join(violations)


def test_every_allowlist_entry_is_used():
    """An exception that no longer matches anything must be removed."""
    files = tree_files()
    srcs = {p: strip_comments(s) for p, s in files.items()}
    for (path, name, arg) in ALLOWED:
        assert path in srcs, path
        assert re.search(r"\b%s\s*\([^;]*%s" % (re.escape(name), re.escape(arg)), srcs[path],
                         re.S), (path, name, arg)


def test_wrappers_are_found():
    """exec_simple (lib/db.c) and STMT (lib/jobq.c) pass their parameter on:
    the scan must treat them as SQL sinks and check their callers."""
    files = {
        "lib/x.c": 'static int\nexec_simple(sqlite3 *h, const char *sql)\n{\n'
                   '\treturn sqlite3_exec(h, sql, NULL, NULL, NULL);\n}\n'
                   'void\nf(sqlite3 *h, const char *name)\n{\n\texec_simple(h, name);\n}\n'
                   'void\ng(sqlite3 *h)\n{\n\tchar b[64];\n\tf(h, b);\n'
                   '\texec_simple(h, "BEGIN");\n}\n',
    }
    # f passes its parameter on too: the value enters at g's call, reported there
    v = scan(files)
    assert len(v) == 1 and "f()" in v[0] and "`b`" in v[0], v


@pytest.mark.parametrize("snippet", [
    # formatted SQL
    'void\nf(struct db *db, const char *id)\n{\n\tchar q[256];\n'
    '\tsnprintf(q, sizeof(q), "SELECT * FROM jobs WHERE id = \'%s\'", id);\n'
    '\tdb_stmt(db, q);\n}\n',
    # a non-const buffer
    'void\nf(sqlite3 *h, char *q)\n{\n\tchar *s = xasprintf("DELETE FROM users WHERE u = %s", q);\n'
    '\tsqlite3_exec(h, s, NULL, NULL, NULL);\n}\n',
    # a pointer that may point anywhere
    'void\nf(sqlite3 *h, int x)\n{\n\tconst char *q = x ? "SELECT 1" : getenv("Q");\n'
    '\tsqlite3_prepare_v2(h, q, -1, NULL, NULL);\n}\n',
    # a macro wrapper fed a variable
    '#define STMT(var, sql) do { var = db_stmt(db, sql); } while (0)\n'
    'void\nf(struct db *db)\n{\n\tsqlite3_stmt *st;\n\tchar text[64];\n\tSTMT(st, text);\n}\n',
    # buf_printf assembling SQL
    'void\nf(struct buf *b, const char *t)\n{\n\tbuf_printf(b, "UPDATE %s SET x = 1", t);\n}\n',
])
def test_scanner_catches(snippet):
    assert scan({"lib/bad.c": snippet}), "the scanner missed:\n" + snippet


@pytest.mark.parametrize("snippet", [
    'void\nf(struct db *db)\n{\n\tstatic const char q[] = "SELECT " COLS " FROM t WHERE id = ?";\n'
    '\tdb_stmt(db, q);\n}\n#define COLS "a, b"\n',
    'void\nf(struct db *db, int s)\n{\n\tstatic const char a[] = "SELECT 1";\n'
    '\tstatic const char b[] = "SELECT 2";\n\tdb_stmt(db, s < 0 ? a : b);\n}\n',
    'void\nf(sqlite3 *h)\n{\n\tsqlite3_exec(h, "BEGIN", NULL, NULL, NULL);\n}\n',
])
def test_scanner_accepts(snippet):
    assert scan({"lib/good.c": snippet}) == []
