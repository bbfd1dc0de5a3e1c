#!/usr/bin/env bash
# Compatibility harness (issue #14): for each real migration directory of compat/projects.tsv,
# run `preflight check`, apply it with `preflight up` into one fresh database and with psql file
# by file (as the directory's own tool reads it) into another, compare `pg_dump --schema-only`
# (ignoring only Preflight's history table), then revert with the down files both ways and
# compare again. Writes one JSON file per project and prints a Markdown table row for each.
#
#   compat/run.sh [--only NAME] [--list FILE]
#
# Environment: DATABASE_URL (a PostgreSQL server where databases may be created; default
# postgres://postgres@127.0.0.1:5432/postgres), PREFLIGHT (the binary; default: built with
# `cargo build -p preflight-cli`), COMPAT_MIRRORS (directory of bare git mirrors named
# owner+name/repo; default /work/.mirror; a missing one is cloned from GitHub), COMPAT_WORK
# (scratch directory; default /tmp/preflight-compat). Needs psql and pg_dump on PATH, python3.
# The fetched repositories' files are never part of this repository.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [[ -z "${PREFLIGHT:-}" ]]; then
  (cd "$here/.." && cargo build -q -p preflight-cli)
  PREFLIGHT="$(cd "$here/.." && cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/preflight"
fi
export PREFLIGHT
exec python3 "$here/harness.py" "$@"
