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
    // squawk's parser lexes on its own: hand it the text with the one construct its lexer reads
    // otherwise than PostgreSQL masked (same length, so every offset stays the file's).
    let parse = SourceFile::parse(&mask_escape_continuations(text));
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

/// squawk's tokens with their byte ranges, corrected where PostgreSQL's lexer reads otherwise:
/// a string that continues an escape string (`E'a'` then a newline then `'b\'c'`) is read
/// with backslash escapes too, as PostgreSQL does (squawk reads the continuation as a standard
/// string, which ends at `\'`). Property-tested against libpg_query's scanner.
pub(crate) fn lex(text: &str) -> Vec<(squawk_lexer::TokenKind, Range<usize>)> {
    use squawk_lexer::{LiteralKind, TokenKind};
    let mut tokens = Vec::new();
    let mut offset = 0usize;
    // Whether the last string token was an escape string, and a newline has been seen since.
    let mut escaping = false;
    let mut continued = false;
    let mut rest = squawk_lexer::tokenize(text);
    while let Some(token) = rest.next() {
        let start = offset;
        offset += token.len as usize;
        let range = start..offset.min(text.len());
        match token.kind {
            TokenKind::Whitespace => {
                continued |= escaping && text[range.clone()].contains('\n');
            }
            TokenKind::Literal {
                kind: LiteralKind::Str { .. },
            } if escaping && continued => {
                // Re-read from here as the continuation of an escape string.
                let reread = format!("E{}", &text[start..]);
                let mut inner = squawk_lexer::tokenize(&reread);
                if let Some(first) = inner.next() {
                    let end = start + first.len as usize - 1;
                    tokens.push((first.kind, start..end.min(text.len())));
                    offset = end;
                    // Offsets of the new iterator continue from `offset`.
                    rest = squawk_lexer::tokenize(&text[offset.min(text.len())..]);
                    continued = false;
                    continue;
                }
            }
            TokenKind::Literal {
                kind: LiteralKind::EscStr { .. },
            } => {
                escaping = true;
                continued = false;
            }
            // PostgreSQL's continuation allows `--` comments between the parts, not `/* */`.
            TokenKind::LineComment => {}
            _ => {
                escaping = false;
                continued = false;
            }
        }
        tokens.push((token.kind, range));
    }
    tokens
}

/// `text` with the contents of every string that continues an escape string (see [`lex`])
/// replaced by `x`s of the same byte length, so that squawk's parser, which reads such a
/// continuation as a standard string, sees a plain string where PostgreSQL sees one.
fn mask_escape_continuations(text: &str) -> std::borrow::Cow<'_, str> {
    use squawk_lexer::{LiteralKind, TokenKind};
    let continuations: Vec<Range<usize>> = lex(text)
        .into_iter()
        .filter(|(kind, range)| {
            matches!(
                kind,
                TokenKind::Literal {
                    kind: LiteralKind::EscStr { .. }
                }
            ) && text[range.clone()].starts_with('\'')
        })
        .map(|(_, range)| range)
        .collect();
    if continuations.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut bytes = text.as_bytes().to_vec();
    for r in continuations {
        let end = if text[r.clone()].len() > 1 && text[r.clone()].ends_with('\'') {
            r.end - 1
        } else {
            r.end
        };
        for b in &mut bytes[r.start + 1..end] {
            *b = b'x';
        }
    }
    // Only whole strings' insides were replaced, by ASCII: still UTF-8.
    std::borrow::Cow::Owned(String::from_utf8(bytes).unwrap_or_else(|_| text.to_owned()))
}

/// Where the `--` comments of a text start (sorted), for the directive reader.
pub(crate) fn line_comment_starts(text: &str) -> Vec<usize> {
    lex(text)
        .into_iter()
        .filter(|(kind, _)| *kind == squawk_lexer::TokenKind::LineComment)
        .map(|(_, range)| range.start)
        .collect()
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
    let tokens = lex(text);
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
    fn a_string_continuing_an_escape_string_keeps_its_escapes() {
        // PostgreSQL reads `'\' :"x"'` as the continuation of `E'a'`: one string, no variable.
        let text = "select E'a'\n'\\' :\"x\"';";
        assert!(
            psql_constructs(text).is_empty(),
            "{:?}",
            psql_constructs(text)
        );
        // A `--` comment may sit between the parts; a `/* */` comment ends the continuation.
        let text = "select E'a' -- c\n'\\' :\"x\"';";
        assert!(
            psql_constructs(text).is_empty(),
            "{:?}",
            psql_constructs(text)
        );
        let text = "select E'a' /* c */\n'\\' :\"x\"';";
        assert_eq!(psql_constructs(text).len(), 1);
        // Without the newline it is a new standard string, and `:"x"` a psql variable.
        let text = "select 'a' '\\' :\"x\"';";
        assert_eq!(psql_constructs(text).len(), 1);
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

/// The lexer squawk gives us, compared with PostgreSQL's own (libpg_query's scanner, feature
/// `exact-grammar`) on generated SQL made of the constructs token-level rules get wrong: the
/// opaque regions (strings of every kind, quoted identifiers, comments, dollar-quoted bodies)
/// must be exactly the same byte ranges, and so must the psql variables found on them.
#[cfg(all(test, feature = "exact-grammar"))]
mod against_postgres_lexer {
    use std::ops::Range;

    use pg_query::protobuf::Token;
    use proptest::prelude::*;

    use super::psql_constructs;

    const PIECES: &[&str] = &[
        "'it''s'",
        "E'it\\'s'",
        "e'\\\\'",
        "'a\\'",
        "$$ x ; :'y' $$",
        "$tag$ $$ \\set $tag$",
        "$a$b$a$",
        "/* a /* b */ c */",
        "/* :'x' */",
        "-- c :'x' \\connect\n",
        "\"MyEnum\"",
        "\"a\"\"b\"",
        "U&\"d\\0061t\"",
        "U&'x'",
        "B'101'",
        "X'ff'",
        "N'x'",
        "::",
        ":",
        ":=",
        "[",
        "]",
        "1",
        "1.5",
        "a",
        "col",
        "?",
        "?|",
        "?&",
        "@>",
        "#>>",
        ";",
        " ",
        "\n",
        "(",
        ")",
        ",",
        "'x'",
        "$1",
        "$name",
        "-",
        "+",
        "*",
        "=",
        "<>",
        "text",
        "select",
        // Adjacent on purpose: casts, assignments, slices and psql variables.
        "c::text::\"MyEnum\"",
        "x:=1",
        "a[1:2]",
        "a[1:'2']",
        "a[:\"n\"]",
        ":'v'",
        ":\"v\"",
        ":{?v}",
        "f(:'v')",
        "'{\"a\":1}'::jsonb",
        "E'\\'':'",
    ];
    const SEPARATORS: &[&str] = &[" ", "\n", "  ", "\t"];

    /// The opaque regions of PostgreSQL's scan, or `None` when it refuses the text.
    fn postgres(text: &str) -> Option<Vec<Range<usize>>> {
        let scan = pg_query::scan(text).ok()?;
        Some(
            scan.tokens
                .iter()
                .filter(|t| {
                    let kind = Token::try_from(t.token).unwrap_or(Token::Nul);
                    let start = t.start as usize;
                    match kind {
                        Token::Sconst
                        | Token::Usconst
                        | Token::Bconst
                        | Token::Xconst
                        | Token::SqlComment
                        | Token::CComment
                        | Token::Uident => true,
                        // Quoted identifiers are IDENT too.
                        Token::Ident => text[start..].starts_with('"'),
                        _ => false,
                    }
                })
                .map(|t| t.start as usize..t.end as usize)
                .collect(),
        )
    }

    fn squawk(text: &str) -> Vec<Range<usize>> {
        use squawk_lexer::{LiteralKind as L, TokenKind as K};
        let mut found = Vec::new();
        for (kind, range) in super::lex(text) {
            let opaque = match kind {
                K::LineComment => {
                    // PostgreSQL's comment token stops before the newline.
                    found.push(
                        range.start..range.end - text[range.clone()].ends_with('\n') as usize,
                    );
                    continue;
                }
                K::BlockComment { .. } | K::QuotedIdent { .. } => true,
                // PostgreSQL reads `N'x'` as the keyword NCHAR and the string `'x'`.
                K::Literal {
                    kind: L::NationalStr { .. },
                } => {
                    found.push(range.start + 1..range.end);
                    continue;
                }
                K::Literal { kind } => matches!(
                    kind,
                    L::Str { .. }
                        | L::EscStr { .. }
                        | L::UnicodeEscStr { .. }
                        | L::DollarQuotedString { .. }
                        | L::BitStr { .. }
                        | L::ByteStr { .. }
                ),
                _ => false,
            };
            if opaque {
                found.push(range);
            }
        }
        found
    }

    /// The bytes inside opaque regions, whitespace aside: PostgreSQL continues a string after
    /// whitespace holding a newline (`'a'\n'b'` is one constant), squawk makes two tokens of
    /// it; the bytes that are string or comment are the same.
    fn covered(text: &str, ranges: &[Range<usize>]) -> Vec<usize> {
        let mut bytes: Vec<usize> = ranges
            .iter()
            .flat_map(|r| r.clone())
            .filter(|&i| !text.as_bytes()[i].is_ascii_whitespace())
            .collect();
        bytes.sort_unstable();
        bytes.dedup();
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn opaque_regions_match_postgres(
            pieces in proptest::collection::vec((0..PIECES.len(), 0..SEPARATORS.len()), 1..24)
        ) {
            // Pieces are separated as in real SQL; the adjacent forms are pieces of their own.
            let text: String = pieces
                .iter()
                .map(|&(i, s)| format!("{}{}", PIECES[i], SEPARATORS[s]))
                .collect();
            let Some(expected) = postgres(&text) else {
                return Ok(());
            };
            prop_assert_eq!(
                covered(&text, &squawk(&text)),
                covered(&text, &expected),
                "{:?}: squawk {:?}, PostgreSQL {:?}",
                text,
                squawk(&text),
                expected
            );
            // psql variables only where PostgreSQL sees a lone `:` before a string or quoted name.
            let scan = pg_query::scan(&text).unwrap();
            let mut brackets = 0usize;
            let mut expected_vars = Vec::new();
            for (i, t) in scan.tokens.iter().enumerate() {
                let s = &text[t.start as usize..t.end as usize];
                match s {
                    "[" => brackets += 1,
                    "]" => brackets = brackets.saturating_sub(1),
                    _ => {}
                }
                if s != ":" || brackets > 0 {
                    continue;
                }
                if let Some(next) = scan.tokens.get(i + 1) {
                    let n = &text[next.start as usize..];
                    let kind = Token::try_from(next.token).unwrap_or(Token::Nul);
                    let string = kind == Token::Sconst && n.starts_with('\'');
                    let quoted = kind == Token::Ident && n.starts_with('"');
                    if next.start == t.end && (string || quoted || n.starts_with('{')) {
                        expected_vars.push(t.start as usize);
                    }
                }
            }
            let found: Vec<usize> = psql_constructs(&text)
                .into_iter()
                .filter(|(_, m)| m.starts_with("psql variable"))
                .map(|(at, _)| at)
                .collect();
            prop_assert_eq!(found, expected_vars, "{:?}", text);
        }
    }
}
