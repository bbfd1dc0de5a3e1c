#!/usr/bin/env bash
# What embedding and checking N migrations (default 1,000) costs at compile time.
#
# Generates a crate in a temporary directory that embeds N migration files with
# `preflight::embed!` (its build.rs calls `preflight::build::watch`), then measures:
#   (a) a warm debug build right after the directory was added (dependencies already built);
#   (b) a rebuild with the directory unchanged (should re-expand nothing);
#   (c) a rebuild after editing one migration (re-expands the whole directory).
# Dependencies build once under <target dir>/compile-time-bench, outside the measurements.
#
# Usage: bench/compile-time.sh [N]
set -euo pipefail
n=${1:-1000}
ws=$(cd "$(dirname "$0")/.." && pwd)
target_root=${CARGO_TARGET_DIR:-$ws/target}
export CARGO_TARGET_DIR="$target_root/compile-time-bench"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/Cargo.toml" <<TOML
[package]
name = "preflight-compile-time-bench"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
preflight = { path = "$ws", default-features = false }

[build-dependencies]
preflight = { path = "$ws", default-features = false }

[workspace]
TOML
cp "$ws/Cargo.lock" "$work/Cargo.lock"
mkdir -p "$work/src" "$work/migrations"
echo 'fn main() { preflight::build::watch("migrations"); }' > "$work/build.rs"
cat > "$work/src/main.rs" <<'RS'
static MIGRATIONS: preflight::Migrations = preflight::embed!("migrations", lints = "warn");

fn main() {
    println!("{} migrations, {} statements", MIGRATIONS.len(),
        MIGRATIONS.iter().map(|m| m.up().statement_count()).sum::<usize>());
}
RS

build() { # build LABEL: wall-clock and CPU time (CPU time is steadier on a busy machine)
  local TIMEFORMAT='%R %U %S' t
  t=$( { time cargo build --quiet --offline --manifest-path "$work/Cargo.toml" 2>"$work/build.log" || { cat "$work/build.log" >&2; exit 1; } ; } 2>&1 )
  read -r real user sys <<<"$t"
  printf '%-50s %6.2f s wall, %6.2f s CPU\n' "$1" "$real" "$(echo "$user + $sys" | bc)"
}

# Warm-up: compile the dependencies with a one-file directory.
echo 'CREATE TABLE warmup (id bigint);' > "$work/migrations/0_warmup.sql"
cargo build --quiet --offline --manifest-path "$work/Cargo.toml" 2>/dev/null
rm "$work/migrations/0_warmup.sql"

# N realistic migrations: tables with constraints, reversible pairs, a lone concurrent index
# every tenth file, a PL/pgSQL function every 25th.
for i in $(seq 1 "$n"); do
  v=$(printf '%06d' "$i")
  if (( i % 10 == 0 )); then
    echo "CREATE INDEX CONCURRENTLY IF NOT EXISTS t$((i-1))_name ON t$((i-1)) (name);" > "$work/migrations/${v}_index_$i.up.sql"
    echo "DROP INDEX CONCURRENTLY IF EXISTS t$((i-1))_name;" > "$work/migrations/${v}_index_$i.down.sql"
  elif (( i % 25 == 0 )); then
    cat > "$work/migrations/${v}_function_$i.up.sql" <<SQL
CREATE FUNCTION f$i(x bigint) RETURNS bigint AS \$\$
BEGIN
    IF x < 0 THEN
        RAISE EXCEPTION 'negative: %', x;
    END IF;
    RETURN x * $i;
END;
\$\$ LANGUAGE plpgsql;
SQL
    echo "DROP FUNCTION f$i(bigint);" > "$work/migrations/${v}_function_$i.down.sql"
  else
    cat > "$work/migrations/${v}_table_$i.up.sql" <<SQL
-- Table number $i.
CREATE TABLE t$i (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    parent_id bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT t${i}_name_length CHECK (char_length(name) <= 200)
);
COMMENT ON TABLE t$i IS 'generated for the compile-time benchmark';
INSERT INTO t$i (name) VALUES ('first'), ('second');
SQL
    echo "DROP TABLE t$i;" > "$work/migrations/${v}_table_$i.down.sql"
  fi
done
files=$(ls "$work/migrations" | wc -l)
bytes=$(cat "$work/migrations"/* | wc -c)
echo "$n migrations ($files files, $bytes bytes), rustc $(rustc --version | cut -d' ' -f2), $(nproc) cores"

build "(a) warm debug build after adding the directory"
"$CARGO_TARGET_DIR/debug/preflight-compile-time-bench"
build "(b) rebuild, directory unchanged"
echo "-- edited" >> "$work/migrations/000001_table_1.up.sql"
build "(c) rebuild after editing one migration"
