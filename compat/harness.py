"""The compatibility harness behind compat/run.sh (see there for usage and environment).

For each project of the list: extract its migration directory from a git mirror at the listed
commit; `preflight check`; `preflight up` into database A and psql file by file into database B
(files read as the directory's own tool reads them: its naming, ordering, sections, dialect
files); compare `pg_dump --schema-only` of both, ignoring only Preflight's history table; then
revert: psql runs the down files newest first until one fails (a broken down file is the
directory's defect, and is reported with psql's error), `preflight down --steps k` reverts the
same k migrations, and the dumps are compared again.
"""

import difflib
import json
import os
import re
import subprocess
import sys
import tarfile
import io
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
PREFLIGHT = os.environ["PREFLIGHT"]
SERVER = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
MIRRORS = Path(os.environ.get("COMPAT_MIRRORS", "/work/.mirror"))
WORK = Path(os.environ.get("COMPAT_WORK", "/tmp/preflight-compat"))


def url_of(db):
    parts = urlsplit(SERVER)
    return urlunsplit(parts._replace(path="/" + db))


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, **kw)


def psql(url, sql=None, file=None, single_transaction=False):
    args = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url]
    if single_transaction:
        args.append("--single-transaction")
    args += ["-c", sql] if sql is not None else ["-f", str(file)]
    return run(args)


# ---------------------------------------------------------------- the directory's own reading


def version_key(text):
    parts = [int(p) for p in re.split(r"[._]", text)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return parts


def sections(text, up_mark, down_mark):
    """(up, down) of a sectioned file, by its tool's line markers."""
    up, down, where = [], [], None
    for line in text.lstrip("\ufeff").splitlines(keepends=True):
        # The tools read annotations at the start of a line only.
        bare = line.rstrip()
        if up_mark(bare):
            where = up
            continue
        if down_mark(bare):
            where = down
            continue
        if where is not None:
            where.append(line)
    return "".join(up), "".join(down) if down else None


def goose_mark(word):
    return lambda l: re.match(r"^--\s*\+goose\s+" + word + r"\b", l, re.I) is not None


def sqlmigrate_mark(word):
    return lambda l: re.match(r"^--\s*\+migrate\s+" + word + r"\b", l, re.I) is not None


def dbmate_mark(word):
    return lambda l: re.match(r"^--\s*migrate:" + word + r"(\s|$)", l) is not None


POP = re.compile(r"^(\d+)_([^.]+)(\.[a-z0-9]+)?(\.autocommit)?\.(up|down)\.sql$")
POP_DIALECTS = {"postgres": "postgres", "postgresql": "postgres", "pg": "postgres",
                "pgx": "postgres", "cockroach": "cockroach", "crdb": "cockroach",
                "cockroachdb": "cockroach", "mysql": "mysql", "sqlite": "sqlite3",
                "sqlite3": "sqlite3", "mssql": "mssql"}


def read_migrations(src, layout):
    """[(version, name, up_sql, down_sql_or_None, up_file)] in the tool's order."""
    found = {}
    files = sorted(p for p in src.iterdir())
    if layout == "diesel":
        for d in files:
            m = re.match(r"^(\d[\d-]*)_(.+)$", d.name)
            if d.is_dir() and m and (d / "up.sql").exists():
                down = (d / "down.sql").read_text() if (d / "down.sql").exists() else None
                found[m.group(1).replace("-", "")] = (m.group(2), (d / "up.sql").read_text(), down, d / "up.sql")
    elif layout == "pop":
        chosen = {}
        for f in files:
            m = POP.match(f.name)
            if not m:
                continue
            v, name, tag, _, direction = m.groups()
            dialect = POP_DIALECTS.get(tag[1:]) if tag and tag != ".autocommit" else None
            if dialect not in (None, "postgres"):
                continue
            key = (v, direction)
            if key in chosen and chosen[key][0] is not None and dialect is None:
                continue
            chosen[key] = (dialect, name, f)
        for (v, direction), (_, name, f) in chosen.items():
            if direction == "up":
                down = chosen.get((v, "down"))
                found[v] = (name, f.read_text(), down[2].read_text() if down else None, f)
    elif layout.startswith("declared:"):
        pattern = re.escape(layout[len("declared:"):])
        pattern = pattern.replace(r"\{version\}", r"(?P<v>\d+(?:[._]\d+)*)")
        pattern = pattern.replace(r"\{name\}", r"(?P<n>.+)")
        pattern = pattern.replace(r"\{direction\}", r"(?P<d>up|down)")
        rx = re.compile("^" + pattern + "$", re.I)
        ups, downs = {}, {}
        for f in files:
            m = rx.match(f.name)
            if m:
                (downs if (m.groupdict().get("d") or "up").lower() == "down" else ups)[m.group("v")] = (m.group("n"), f)
        for v, (name, f) in ups.items():
            found[v] = (name, f.read_text(), downs[v][1].read_text() if v in downs else None, f)
    elif layout in ("flyway", "refinery"):
        for f in files:
            m = re.match(r"^V(\d+(?:[._]\d+)*)__(.+)\.sql$", f.name)
            if m:
                found[m.group(1)] = (m.group(2), f.read_text(), None, f)
    elif layout in ("updown", "sqlx-reversible"):
        for f in files:
            m = re.match(r"^(\d+)_(.+)\.up\.sql$", f.name)
            if m:
                down = f.with_name(f.name[: -len(".up.sql")] + ".down.sql")
                found[m.group(1)] = (m.group(2), f.read_text(), down.read_text() if down.exists() else None, f)
    elif layout in ("simple", "goose", "sqlmigrate", "dbmate"):
        for f in files:
            m = re.match(r"^(\d+)(?:_(.+))?\.sql$", f.name)
            if not m or re.search(r"\.(up|down)\.sql$", f.name):
                continue
            text = f.read_text()
            if layout == "goose":
                up, down = sections(text, goose_mark("up"), goose_mark("down"))
                down = down or ""  # goose reverts a file without a Down section as a no-op
            elif layout == "sqlmigrate":
                up, down = sections(text, sqlmigrate_mark("up"), sqlmigrate_mark("down"))
            elif layout == "dbmate":
                up, down = sections(text, dbmate_mark("up"), dbmate_mark("down"))
            else:
                up, down = text, None
            found[m.group(1)] = (m.group(2), up, down, f)
    else:
        raise SystemExit(f"unknown layout {layout}")
    return [(v, *found[v]) for v in sorted(found, key=version_key)]


NO_TX_MARKERS = re.compile(
    r"^--\s*\+goose\s+no\s+transaction|^--\s*\+migrate\s+up\s+notransaction|"
    r"^--\s*migrate:up\s+.*transaction:false|\A(\ufeff)?-- no-transaction|"
    r"^--\s*preflight:no-transaction",
    re.I | re.M,
)
OUTSIDE_TX = re.compile(
    r"\bconcurrently\b|^\s*vacuum\b|^\s*(begin|start\s+transaction)\s*(;|transaction\b|work\b|isolation\b)"
    r"|^\s*(commit|end)\s*;",
    re.I | re.M,
)
QUOTED = re.compile(r"(\$[A-Za-z_]*\$).*?\1|'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/", re.S)


def in_transaction(path, whole_text, sql):
    """Whether the directory's tool runs this body in a transaction: not when the file says so
    (each tool's marker), and not when it holds what cannot run in one or its own blocks."""
    if NO_TX_MARKERS.search(whole_text) or ".autocommit." in path.name:
        return False
    meta = path.parent / "metadata.toml"
    if path.name in ("up.sql", "down.sql") and meta.exists():
        if re.search(r"run_in_transaction\s*=\s*false", meta.read_text()):
            return False
    # Only statements count: not words inside function bodies, strings or comments.
    return not OUTSIDE_TX.search(QUOTED.sub(" ", sql))


# ---------------------------------------------------------------- databases and dumps


def fresh(db, prelude):
    """A new database, with what the project's deployment creates before its migrations run
    (roles, schemas): SQL, or files of the repository (`file:` paths)."""
    psql(SERVER, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    r = psql(SERVER, f'CREATE DATABASE "{db}"')
    if r.returncode:
        raise SystemExit(r.stderr)
    for step in prelude:
        r = psql(url_of(db), file=step) if isinstance(step, Path) else psql(url_of(db), step)
        if r.returncode:
            raise SystemExit(f"prelude failed: {r.stderr}")


def drop(db):
    psql(SERVER, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def dump(db):
    r = run(["pg_dump", "--schema-only", "--no-owner", "-T", "preflight_history*", url_of(db)])
    if r.returncode:
        raise SystemExit(r.stderr)
    # Sections start with a `-- Name: ...; Type: ...` header; drop Preflight's (its row-count
    # function), and the dump's own noise.
    kept, skip = [], False
    for line in r.stdout.splitlines():
        if line.startswith("-- Name: "):
            skip = line.startswith("-- Name: preflight_history")
        if skip or line.startswith("--") or line.startswith("SET ") or not line.strip():
            continue
        # pg_dump 15.14+ guards its output with a random key.
        if line.startswith(("SELECT pg_catalog.set_config", "\\restrict", "\\unrestrict")):
            continue
        kept.append(line)
    return kept


def compare(a, b, out):
    da, db_ = dump(a), dump(b)
    if da == db_:
        return True, 0
    diff = list(difflib.unified_diff(db_, da, "psql", "preflight", lineterm=""))
    out.write_text("\n".join(diff) + "\n")
    return False, len(diff)


def first_error(text):
    lines = [l for l in text.splitlines() if "ERROR" in l or "error" in l]
    return (lines[0] if lines else text.strip().splitlines()[-1] if text.strip() else "").strip()[:300]


# ---------------------------------------------------------------- one project


def git_dir_of(project):
    owner_name = project["repo"].replace("/", "+")
    git_dir = MIRRORS / owner_name / "repo"
    if not git_dir.exists():
        git_dir = WORK / "mirrors" / owner_name
        if not git_dir.exists():
            subprocess.run(["git", "clone", "--bare", "--filter=blob:none",
                            f"https://github.com/{project['repo']}", str(git_dir)], check=True)
    return git_dir


def extract(project, path, into):
    dest = WORK / project["name"] / into
    if dest.exists():
        subprocess.run(["rm", "-rf", str(dest)], check=True)
    dest.mkdir(parents=True)
    data = subprocess.run(["git", "--git-dir", str(git_dir_of(project)), "archive", project["commit"], path],
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        t.extractall(dest, filter="data")
    return dest / path


def prelude_of(project):
    """Steps separated by ` | `: `roles:a,b` (cluster roles, created when missing), `file:glob`
    (files of the repository), or SQL."""
    steps = []
    for text in filter(None, (t.strip() for t in project["prelude"].split(" | "))):
        if text.startswith("roles:"):
            for role in text[len("roles:"):].split(","):
                psql(SERVER, f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
                             f"THEN CREATE ROLE \"{role}\"; END IF; END$$")
        elif text.startswith("file:"):
            pattern = text[len("file:"):]
            base = extract(project, os.path.dirname(pattern), "prelude")
            steps += sorted(base.glob(os.path.basename(pattern)))
        else:
            steps.append(text)
    return steps


def check_project(project):
    name, layout = project["name"], project["layout"]
    work = WORK / name
    src = extract(project, project["dir"], "src")
    prelude = prelude_of(project)
    opts = project["options"].split() if project["options"] else []
    result = {"project": name, "repo": project["repo"], "commit": project["commit"],
              "dir": project["dir"], "layout": layout}
    files = [p for p in src.rglob("*") if p.is_file()]
    result["files"] = len(files)

    chk = run([PREFLIGHT, "--dir", str(src), *opts, "check", "--json"])
    doc = json.loads(chk.stdout) if chk.stdout.strip().startswith("{") else {}
    result["check_ok"] = chk.returncode == 0
    result["check_error"] = None if chk.returncode == 0 else (doc.get("error") or chk.stderr)[-3000:]
    result["migrations"] = doc.get("migrations")
    result["warnings"] = len(doc.get("warnings", []))
    result["notes"] = len(doc.get("notes", []))
    result["warning_rules"] = {}
    for w in doc.get("warnings", []):
        rule = re.search(r"\[([a-z-]+)\]", w.splitlines()[0])
        key = rule.group(1) if rule else "?"
        result["warning_rules"][key] = result["warning_rules"].get(key, 0) + 1
    (work / "check.txt").write_text(chk.stdout + chk.stderr)

    migrations = read_migrations(src, layout)
    result["reference_migrations"] = len(migrations)
    a, b = f"compat_{name}_pf"[:60], f"compat_{name}_psql"[:60]
    fresh(a, prelude)
    fresh(b, prelude)
    try:
        up = run([PREFLIGHT, "--dir", str(src), "--database-url", url_of(a), *opts, "up"])
        result["up_ok"] = up.returncode == 0
        result["up_error"] = None if up.returncode == 0 else (up.stderr + up.stdout)[-3000:]
        (work / "up.txt").write_text(up.stdout + up.stderr)

        applied = 0
        result["psql_up_error"] = None
        with tempfile.TemporaryDirectory() as tmp:
            for i, (v, mname, up_sql, _, path) in enumerate(migrations):
                f = Path(tmp) / f"{i}.sql"
                f.write_text(up_sql)
                r = psql(url_of(b), file=f,
                         single_transaction=in_transaction(path, path.read_text(), up_sql))
                if r.returncode:
                    result["psql_up_error"] = f"{path.relative_to(src)}: {first_error(r.stderr)}"
                    break
                applied += 1
        result["psql_up_applied"] = applied
        if result["up_ok"] and result["psql_up_error"] is None:
            result["schema_equal_up"], result["diff_up"] = compare(a, b, work / "diff-up.txt")
        elif not result["up_ok"] and result["psql_up_error"] is not None:
            # Both stopped (the same file, when the server refuses it): compare what each built
            # up to there.
            done = run(["psql", "-X", "-A", "-t", "-d", url_of(a), "-c",
                        "SELECT count(*) FROM preflight_history WHERE state = 'applied'"]).stdout.strip()
            result["preflight_applied"] = int(done) if done.isdigit() else None
            result["schema_equal_up"] = None
            if result["preflight_applied"] == applied:
                result["schema_equal_at_stop"], result["diff_up"] = compare(a, b, work / "diff-up.txt")
        else:
            result["schema_equal_up"] = None

        # Revert: psql's down files newest first until one fails or is missing.
        result["down_steps"] = 0
        result["psql_down_error"] = None
        if result["schema_equal_up"] and any(m[3] is not None for m in migrations):
            k = 0
            with tempfile.TemporaryDirectory() as tmp:
                for i, (v, mname, _, down_sql, path) in enumerate(reversed(migrations)):
                    if down_sql is None:
                        result["psql_down_error"] = f"{path.relative_to(src)}: no down file"
                        break
                    f = Path(tmp) / f"d{i}.sql"
                    f.write_text(down_sql)
                    down_path = path.with_name("down.sql") if path.name == "up.sql" else path
                    whole = down_path.read_text() if down_path.exists() else down_sql
                    r = psql(url_of(b), file=f, single_transaction=in_transaction(down_path, whole, down_sql))
                    if r.returncode:
                        result["psql_down_error"] = f"{path.relative_to(src)} (down): {first_error(r.stderr)}"
                        break
                    k += 1
            result["down_steps"] = k
            if k:
                down = run([PREFLIGHT, "--dir", str(src), "--database-url", url_of(a), *opts,
                            "down", "--steps", str(k)])
                result["down_ok"] = down.returncode == 0
                result["down_error"] = None if down.returncode == 0 else (down.stderr + down.stdout)[-3000:]
                (work / "down.txt").write_text(down.stdout + down.stderr)
                if result["down_ok"]:
                    result["schema_equal_down"], result["diff_down"] = compare(a, b, work / "diff-down.txt")
    finally:
        drop(a)
        drop(b)
    result["verdict"] = verdict(result)
    (work / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def verdict(r):
    errors = len(re.findall(r": error: ", r["check_error"] or ""))
    if not r.get("up_ok"):
        if r.get("psql_up_error"):
            at_stop = r.get("schema_equal_at_stop")
            same = ("; both stop there, schemas equal up to it" if at_stop
                    else "; SCHEMAS DIFFER where both stop" if at_stop is False else "")
            return "both refuse (psql: " + r["psql_up_error"] + ")" + same
        return "REFUSED by Preflight only"
    if not r["check_ok"]:
        # `check` (and `embed!`) refuse the directory, `up` applies what is sound.
        prefix = f"check: {errors} error(s); up: "
        if r.get("psql_up_error"):
            return prefix + "applies, psql fails (" + r["psql_up_error"] + ")"
        return prefix + ("schema equal" if r.get("schema_equal_up") else "SCHEMA DIFFERS")
    if r.get("psql_up_error"):
        return "psql fails, Preflight applies (" + r["psql_up_error"] + ")"
    if not r.get("schema_equal_up"):
        return "SCHEMA DIFFERS after up"
    if r.get("down_steps") and not r.get("down_ok"):
        return "DOWN REFUSED by Preflight"
    if r.get("down_steps") and not r.get("schema_equal_down"):
        return "SCHEMA DIFFERS after down"
    return "pass"


def load_list(path):
    projects = []
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cols = line.split("\t")
        cols += [""] * (7 - len(cols))
        name, repo, commit, d, layout, options, prelude = cols[:7]
        projects.append({"name": name, "repo": repo, "commit": commit, "dir": d, "layout": layout,
                         "options": options.strip(), "prelude": prelude.strip()})
    return projects


def main(argv):
    only, path = None, HERE / "projects.tsv"
    while argv:
        a = argv.pop(0)
        if a == "--only":
            only = argv.pop(0)
        elif a == "--list":
            path = Path(argv.pop(0))
        else:
            raise SystemExit(f"unknown argument {a}")
    print("| project | commit | layout | files | migrations | result | warnings/migration | down |")
    print("|---|---|---|---|---|---|---|---|")
    for p in load_list(path):
        if only and p["name"] != only:
            continue
        try:
            r = check_project(p)
        except (Exception, SystemExit) as e:  # one project's trouble must not stop the others
            print(f"| {p['name']} | {p['commit'][:12]} | {p['layout']} | - | - | harness: {str(e)[:200]} | - | - |", flush=True)
            continue
        per = "-" if not r.get("migrations") else f"{r['warnings'] / r['migrations']:.2f}"
        down = (f"{r['down_steps']} reverted, " + ("equal" if r.get("schema_equal_down") else "DIFFERS")
                if r.get("down_steps") else "-")
        if r.get("psql_down_error"):
            down += f"; stops: {r['psql_down_error']}"
        print(f"| {r['project']} | {r['commit'][:12]} | {r['layout']} | {r['files']} | "
              f"{r['migrations']} | {r['verdict']} | {per} ({r['warnings']}) | {down} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
