//! Parsing one migration body with `squawk-syntax`: syntax errors, statements with exact byte
//! ranges, what each statement means for transactions, and the psql-only constructs a database
//! driver cannot run.

use std::ops::Range;

use squawk_syntax::{Parse, SourceFile, SyntaxKind, SyntaxNode};

/// What a statement means for the transaction it runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Runs inside a transaction like nearly every statement (savepoints included).
    Ordinary,
    /// Cannot run inside a transaction block (PostgreSQL's SQLSTATE 25001); the text names it.
    NoTransaction(&'static str),
    /// `BEGIN` / `START TRANSACTION`; `plain` when it sets no transaction mode.
    Begin { plain: bool },
    /// `COMMIT` / `END`; `plain` unless `AND CHAIN`.
    Commit { plain: bool },
    /// `ROLLBACK` / `ABORT` (not `ROLLBACK TO SAVEPOINT`).
    Rollback,
    /// `SAVEPOINT`, `RELEASE`, `ROLLBACK TO SAVEPOINT`: fine inside a transaction only.
    Savepoint,
    /// `PREPARE TRANSACTION`, `COMMIT PREPARED`, `ROLLBACK PREPARED`.
    TwoPhase,
    /// A whole explicit block of a script body, from its `BEGIN` to its `COMMIT`, which starts
    /// at byte `commit` of the file (made by the transaction rules, never by the parser).
    Block { commit: usize },
}

/// One statement of a body: its byte range in the *file* (ending after its `;` when it has one)
/// and its class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Statement {
    pub range: Range<usize>,
    pub class: Class,
}

impl Statement {
    /// The first keyword(s) of the statement, for messages.
    pub fn head<'a>(&self, file_text: &'a str) -> &'a str {
        let text = &file_text[self.range.clone()];
        let text = text.trim_end_matches(';').trim();
        let end = text
            .char_indices()
            .filter(|&(_, c)| c.is_whitespace())
            .nth(2)
            .map_or(text.len(), |(i, _)| i);
        let head = &text[..end];
        head.split(['(', '\n', '\r']).next().unwrap_or(head).trim()
    }
}

/// A problem at a byte offset of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub offset: usize,
    pub message: String,
}

/// The result of parsing one body.
pub(crate) struct Analysis {
    /// Non-empty statements in order (lone `;` skipped).
    pub statements: Vec<Statement>,
    /// Syntax errors and psql-only constructs, in order.
    pub problems: Vec<Problem>,
    /// The parse, for the linter (offsets relative to `base`).
    pub parse: Parse<SourceFile>,
    /// Where the parsed text starts in the file.
    pub base: usize,
}

/// Parses the body `range` of `file_text`.
pub(crate) fn analyze(file_text: &str, range: Range<usize>) -> Analysis {
    let mut base = range.start;
    // A byte-order mark is not SQL; byte offsets stay relative to the raw file text.
    if file_text[base..range.end].starts_with('\u{feff}') {
        base += '\u{feff}'.len_utf8();
    }
    let text = &file_text[base..range.end];
    let parse = SourceFile::parse(text);
    let root = parse.syntax_node();

    let mut statements = Vec::new();
    let mut problems = Vec::new();
    // Ranges (relative to `text`) whose syntax errors are explained by another problem already:
    // COPY data rows, lines holding psql meta-commands.
    let mut explained: Vec<Range<usize>> = Vec::new();

    for node in root.children() {
        if !is_statement(node.kind()) {
            continue;
        }
        let node_range = to_range(node.text_range());
        if node.kind() == SyntaxKind::COPY && copies_from_stdin(&node) {
            problems.push(Problem {
                offset: base + node_range.start,
                message:
                    "`COPY ... FROM stdin` needs psql to stream the data rows that follow it, \
                          and migrations run through a database driver: turn the rows into \
                          `INSERT ... VALUES` statements"
                        .into(),
            });
            explained.push(node_range.end..copy_data_end(text, node_range.end));
        }
        statements.push(Statement {
            range: base + node_range.start..base + node_range.end,
            class: classify(&node),
        });
    }

    let copy_data = explained.clone();
    for (at, message) in psql_constructs(text) {
        if copy_data.iter().any(|r| r.contains(&at)) {
            continue;
        }
        explained.push(line_of(text, at));
        problems.push(Problem {
            offset: base + at,
            message,
        });
    }

    // Squawk reports follow-up errors for one mistake (and several per line): one per line is
    // what a reader can act on.
    let mut lines_seen: Vec<usize> = Vec::new();
    for error in parse.errors() {
        let mut at = usize::from(error.range().start());
        if error.range().is_empty() {
            // "expected X" errors sit at the end of the previous token; point at what follows
            // on the same line instead, as compilers do.
            at += text[at..].len() - text[at..].trim_start_matches([' ', '\t']).len();
        }
        if explained.iter().any(|r| r.contains(&at) || r.end == at) {
            continue;
        }
        let line_start = line_of(text, at).start;
        if lines_seen.contains(&line_start) {
            continue;
        }
        lines_seen.push(line_start);
        problems.push(Problem {
            offset: base + at,
            message: format!("syntax error: {}", error.message()),
        });
    }
    problems.sort_by_key(|p| p.offset);

    Analysis {
        statements,
        problems,
        parse,
        base,
    }
}

fn to_range(r: rowan::TextRange) -> Range<usize> {
    usize::from(r.start())..usize::from(r.end())
}

/// Statement nodes are the root's child nodes, minus the empty statement (a lone `;`) and error
/// nodes (already reported as syntax errors).
pub(crate) fn is_statement(kind: SyntaxKind) -> bool {
    !matches!(kind, SyntaxKind::EMPTY_STMT | SyntaxKind::ERROR)
}

fn has_token(node: &SyntaxNode, kind: SyntaxKind) -> bool {
    node.descendants_with_tokens().any(|e| e.kind() == kind)
}

fn has_child_token(node: &SyntaxNode, kind: SyntaxKind) -> bool {
    node.children_with_tokens().any(|e| e.kind() == kind)
}

/// The statements PostgreSQL refuses inside a transaction block (SQLSTATE 25001).
fn classify(node: &SyntaxNode) -> Class {
    use SyntaxKind as K;
    match node.kind() {
        K::CREATE_INDEX if has_child_token(node, K::CONCURRENTLY_KW) => {
            Class::NoTransaction("CREATE INDEX CONCURRENTLY")
        }
        K::DROP_INDEX if has_child_token(node, K::CONCURRENTLY_KW) => {
            Class::NoTransaction("DROP INDEX CONCURRENTLY")
        }
        // `REINDEX ... CONCURRENTLY name` and `REINDEX (CONCURRENTLY) ...`.
        K::REINDEX if has_token(node, K::CONCURRENTLY_KW) => {
            Class::NoTransaction("REINDEX ... CONCURRENTLY")
        }
        K::VACUUM => Class::NoTransaction("VACUUM"),
        K::CREATE_DATABASE => Class::NoTransaction("CREATE DATABASE"),
        K::DROP_DATABASE => Class::NoTransaction("DROP DATABASE"),
        K::CREATE_TABLESPACE => Class::NoTransaction("CREATE TABLESPACE"),
        K::DROP_TABLESPACE => Class::NoTransaction("DROP TABLESPACE"),
        K::ALTER_SYSTEM => Class::NoTransaction("ALTER SYSTEM"),
        K::ALTER_TABLE
            if node
                .descendants()
                .any(|n| n.kind() == K::DETACH_PARTITION && has_token(&n, K::CONCURRENTLY_KW)) =>
        {
            Class::NoTransaction("ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY")
        }
        // `CLUSTER` without a table re-clusters every table, each in its own transaction.
        K::CLUSTER if !node.descendants().any(|n| n.kind() == K::PATH_REF) => {
            Class::NoTransaction("CLUSTER without a table")
        }
        K::BEGIN => Class::Begin {
            plain: !node
                .children()
                .any(|n| n.kind() == K::TRANSACTION_MODE_LIST),
        },
        K::COMMIT_TRANSACTION => Class::Commit {
            plain: !has_token(node, K::CHAIN_KW),
        },
        K::ROLLBACK_TRANSACTION => Class::Rollback,
        K::SAVEPOINT_CREATE | K::RELEASE_SAVEPOINT | K::ROLLBACK_TO_SAVEPOINT => Class::Savepoint,
        K::PREPARE_TRANSACTION | K::COMMIT_PREPARED | K::ROLLBACK_PREPARED => Class::TwoPhase,
        _ => Class::Ordinary,
    }
}

fn copies_from_stdin(node: &SyntaxNode) -> bool {
    node.children().any(|n| {
        n.kind() == SyntaxKind::COPY_FROM
            && n.children().any(|c| c.kind() == SyntaxKind::COPY_STDIN)
    })
}

/// Where the data rows after a `COPY ... FROM stdin` end: after the `\.` line, or at the end.
fn copy_data_end(text: &str, from: usize) -> usize {
    let mut offset = from;
    for line in text[from..].split_inclusive('\n') {
        offset += line.len();
        if line.trim_end() == "\\." {
            return offset;
        }
    }
    text.len()
}

/// The byte range of the line holding `offset`.
fn line_of(text: &str, offset: usize) -> Range<usize> {
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    start..end
}

/// psql meta-commands (`\connect`, `\set`, `\gset`, ...) and psql variables (`:'var'`,
/// `:"var"`, `:{?var}`), found on squawk's lexer's tokens, so that backslashes and colons inside
/// strings (`E'it\'s'`), quoted identifiers, comments (nested ones too) and dollar-quoted bodies
/// (with tags, holding PL/pgSQL's `:=` and `$1`) do not count. A colon is a psql variable only
/// when it is on its own: not half of a `::` cast (`col::text::"MyEnum"`), not followed by `=`
/// (`:=`), and not an array slice bound (`a[1:'2']`, `a[:"n"]`, inside brackets). A bare
/// `:name` is left alone: it is also array-slice syntax (`a[1:n]`). PostgreSQL's own lexer has
/// no token starting with a backslash outside strings, so such a token is psql's.
fn psql_constructs(text: &str) -> Vec<(usize, String)> {
    use squawk_lexer::{LiteralKind, TokenKind};
    let tokens: Vec<(TokenKind, Range<usize>)> = {
        let mut offset = 0usize;
        squawk_lexer::tokenize(text)
            .map(|token| {
                let start = offset;
                offset += token.len as usize;
                (token.kind, start..offset.min(text.len()))
            })
            .collect()
    };
    let mut found = Vec::new();
    let mut brackets = 0usize;
    for (i, (kind, range)) in tokens.iter().enumerate() {
        match kind {
            TokenKind::OpenBracket => brackets += 1,
            TokenKind::CloseBracket => brackets = brackets.saturating_sub(1),
            _ => {}
        }
        let token_text = &text[range.clone()];
        if matches!(kind, TokenKind::Unknown) && token_text.starts_with('\\') {
            let line = line_of(text, range.start);
            let command: String = text[range.start..line.end]
                .chars()
                .skip(1)
                .take_while(|c| c.is_alphanumeric() || *c == '!' || *c == '?' || *c == '.')
                .collect();
            found.push((
                range.start,
                format!(
                    "psql meta-command `\\{command}`: migrations run through a database driver, \
                     which cannot run psql commands; remove it (connect to the right database \
                     and set variables in the application instead)"
                ),
            ));
            continue;
        }
        if *kind != TokenKind::Colon || brackets > 0 {
            continue;
        }
        // Half of `::`: the colon before or after it is adjacent.
        let adjacent_colon = |j: Option<usize>| {
            j.and_then(|j| tokens.get(j)).is_some_and(|(k, r)| {
                *k == TokenKind::Colon && (r.end == range.start || r.start == range.end)
            })
        };
        if adjacent_colon(i.checked_sub(1)) || adjacent_colon(Some(i + 1)) {
            continue;
        }
        let Some((next, next_range)) = tokens.get(i + 1) else {
            continue;
        };
        if next_range.start != range.end {
            continue;
        }
        let variable = match next {
            TokenKind::Literal {
                kind: LiteralKind::Str { .. },
            }
            | TokenKind::QuotedIdent { .. } => &text[next_range.clone()],
            TokenKind::OpenCurly => "{?...}",
            _ => continue,
        };
        found.push((
            range.start,
            format!(
                "psql variable `:{variable}`: migrations run through a database driver, which \
                 does not interpolate psql variables; write the value in the SQL"
            ),
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(text: &str) -> Vec<&str> {
        analyze(text, 0..text.len())
            .statements
            .iter()
            .map(|s| &text[s.range.clone()])
            .collect()
    }

    fn classes(text: &str) -> Vec<Class> {
        analyze(text, 0..text.len())
            .statements
            .iter()
            .map(|s| s.class)
            .collect()
    }

    fn problems(text: &str) -> Vec<(usize, String)> {
        analyze(text, 0..text.len())
            .problems
            .into_iter()
            .map(|p| (p.offset, p.message))
            .collect()
    }

    #[test]
    fn splits_with_exact_ranges() {
        let text = "CREATE TABLE t (id int);\n;\nselect 1; -- c\nselect 2";
        assert_eq!(
            spans(text),
            ["CREATE TABLE t (id int);", "select 1;", "select 2"]
        );
        assert_eq!(spans("select 1 ;; select 2;"), ["select 1 ;", "select 2;"]);
        assert!(spans("").is_empty());
        assert!(spans("-- only a comment\n/* and another */\n").is_empty());
    }

    #[test]
    fn ranges_are_relative_to_the_file() {
        let file = "-- +goose Up\nselect 1;\n-- +goose Down\nselect 2;\n";
        let down = file.find("select 2").unwrap();
        let a = analyze(file, down - 1..file.len());
        assert_eq!(a.statements[0].range, down..down + 9);
        assert!(a.problems.is_empty());
    }

    #[test]
    fn bodies_with_inner_semicolons_stay_whole() {
        let atomic = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  select 1;\n  select 2;\nEND;\nselect 3;";
        assert_eq!(spans(atomic).len(), 2);
        let quoted =
            "CREATE FUNCTION f() RETURNS int AS 'select 1; select 2' LANGUAGE sql;\nselect 3;";
        assert_eq!(spans(quoted).len(), 2);
        let dollar = "CREATE FUNCTION f() RETURNS trigger AS $$\nBEGIN\n  NEW.x := 1;\n  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;";
        assert_eq!(spans(dollar), [dollar]);
        assert!(problems(dollar).is_empty());
    }

    #[test]
    fn classifies_statements_that_cannot_run_in_a_transaction() {
        let text = "VACUUM t; CLUSTER; CLUSTER t; CLUSTER VERBOSE; REINDEX TABLE CONCURRENTLY t; \
                    REINDEX (CONCURRENTLY) TABLE t; REINDEX TABLE t; \
                    ALTER TABLE p DETACH PARTITION c CONCURRENTLY; ALTER TABLE p DETACH PARTITION c; \
                    ALTER SYSTEM SET work_mem = '1MB'; CREATE DATABASE d; DROP DATABASE d; \
                    CREATE TABLESPACE ts LOCATION '/x'; DROP TABLESPACE ts; DROP INDEX CONCURRENTLY i; \
                    DROP INDEX i; CREATE INDEX CONCURRENTLY i ON t (a); CREATE INDEX i ON t (a);";
        let nontx: Vec<bool> = classes(text)
            .into_iter()
            .map(|c| matches!(c, Class::NoTransaction(_)))
            .collect();
        assert_eq!(
            nontx,
            [
                true, true, false, true, true, true, false, true, false, true, true, true, true,
                true, true, false, true, false
            ]
        );
    }

    #[test]
    fn classifies_transaction_control() {
        assert_eq!(
            classes(
                "BEGIN; START TRANSACTION; BEGIN ISOLATION LEVEL SERIALIZABLE; COMMIT; END; \
                 COMMIT AND CHAIN; ROLLBACK; ABORT; SAVEPOINT s; RELEASE s; ROLLBACK TO SAVEPOINT s; \
                 PREPARE TRANSACTION 'x'; COMMIT PREPARED 'x'; SET timezone = 'UTC';"
            ),
            [
                Class::Begin { plain: true },
                Class::Begin { plain: true },
                Class::Begin { plain: false },
                Class::Commit { plain: true },
                Class::Commit { plain: true },
                Class::Commit { plain: false },
                Class::Rollback,
                Class::Rollback,
                Class::Savepoint,
                Class::Savepoint,
                Class::Savepoint,
                Class::TwoPhase,
                Class::TwoPhase,
                Class::Ordinary,
            ]
        );
    }

    #[test]
    fn reports_syntax_errors_once_per_line() {
        let text = "select 1;\nselect 1 from where;\n";
        let p = problems(text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, text.find("where").unwrap());
        assert!(p[0].1.starts_with("syntax error: "));
    }

    #[test]
    fn refuses_psql_meta_commands_and_variables() {
        let text =
            "\\connect app\nselect 1;\n\\set x 1\nselect :'x', :\"y\", a[1:n], '\\n', $$ \\ $$;\n";
        let p = problems(text);
        let at: Vec<usize> = p.iter().map(|p| p.0).collect();
        assert_eq!(
            at,
            [
                0,
                text.find("\\set").unwrap(),
                text.find(":'x'").unwrap(),
                text.find(":\"y\"").unwrap()
            ],
            "{p:?}"
        );
        assert!(p[0].1.contains("`\\connect`"));
        assert!(p[2].1.contains("`:'x'`"));
    }

    #[test]
    fn colons_of_casts_assignments_and_slices_are_not_psql_variables() {
        // Each construct of issue #14, class 1: PostgreSQL accepts all of them.
        for valid in [
            r#"ALTER TABLE t ALTER COLUMN c TYPE "MyEnum" USING c::text::"MyEnum";"#,
            r#"select x::"MyEnum", y ::"T", z:: "T";"#,
            r#"select (array[1,2,3])[1:'2'], (array[1,2,3])[:"n"] from (select 2 as n) s;"#,
            "select a[1:2], a[1:n], a[:3] from t;",
            "DO $body$ DECLARE x int; BEGIN x := 1; PERFORM $1; END $body$;",
            "CREATE FUNCTION f(int) RETURNS int AS 'select $1 :: int' LANGUAGE sql;",
            r#"select E'it\'s :''x''', 'a\', ':"y"';"#,
            r#"/* a /* nested :'x' */ still a comment \connect */ select 1;"#,
            r#"select U&"d\0061t\+000061" from t;"#,
            r#"select '{"a":1}'::jsonb ? 'a', j ?| array['a'], j ?& array['b'], j @> '{}', j #>> '{a}' from t;"#,
            r#"select $tag$ :'x' \set $tag$;"#,
            "-- :'x' \\connect in a comment\nselect 1;",
        ] {
            assert!(problems(valid).is_empty(), "{valid}: {:?}", problems(valid));
        }
    }

    #[test]
    fn refuses_copy_from_stdin_and_ignores_its_rows() {
        let text = "COPY t (a, b) FROM stdin;\n1\t2\n3\t4\n\\.\nselect 1;\n";
        let p = problems(text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].1.contains("COPY ... FROM stdin"));
        assert_eq!(spans(text).last(), Some(&"select 1;"));
        // COPY to a file or from a program is the server's business, not psql's.
        assert!(problems("COPY t TO '/tmp/x.csv';").is_empty());
    }

    #[test]
    fn skips_a_byte_order_mark() {
        let text = "\u{feff}select 1;\r\nselect 2;\r\n";
        let a = analyze(text, 0..text.len());
        assert!(a.problems.is_empty());
        assert_eq!(a.statements[0].range, 3..12);
    }

    #[test]
    fn statement_head_for_messages() {
        let text = "CREATE INDEX CONCURRENTLY i ON t (a);";
        let s = &analyze(text, 0..text.len()).statements[0];
        assert_eq!(s.head(text), "CREATE INDEX CONCURRENTLY");
        let text = "vacuum;";
        let s = &analyze(text, 0..text.len()).statements[0];
        assert_eq!(s.head(text), "vacuum");
    }
}
