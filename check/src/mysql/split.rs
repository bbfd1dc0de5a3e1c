//! Splitting a MySQL migration into the statements the server will run one by one, with their
//! exact byte ranges in the file.
//!
//! A small lexer, not a parser: it follows MySQL's quoting and comment rules so that a `;` inside
//! a string, a quoted identifier or a comment never ends a statement, and it understands the two
//! ways files carry statements that contain `;`:
//!
//! * **`DELIMITER`**, the `mysql` client's command (Flyway and most hand-written procedure files use
//!   it): a line `DELIMITER $$` makes `$$` the end of a statement until the next `DELIMITER` line.
//!   The command is the client's, not SQL: its line is not part of any statement, and neither is
//!   the delimiter that ends one.
//! * **stored-program bodies without `DELIMITER`** (golang-migrate and goose send a file as one
//!   multi-statement query, and the server's parser reads a body to its `END`): in `CREATE
//!   PROCEDURE`, `FUNCTION`, `TRIGGER` and `EVENT` (and MariaDB's `BEGIN NOT ATOMIC` block), a `;`
//!   inside `BEGIN` ... `END` does not end the statement. Nesting counts `BEGIN` and `CASE`
//!   against `END`, and ignores `END IF`, `END LOOP`, `END WHILE` and `END REPEAT`, whose
//!   openers are not counted.
//!
//! MySQL's comments: `# ...`, `/* ... */`, and `-- ` only when the two dashes are followed by a
//! space, a control character or the end of the text (`--x` is two minus signs). Executable
//! comments (`/*! ... */`, MariaDB's `/*M! ... */`) and optimizer hints (`/*+ ... */`) are code:
//! they belong to the statement they are in, and a file's `/*!40101 SET NAMES utf8 */;` is a
//! statement of its own.

use std::ops::Range;

use crate::sql::Problem;

/// The statements of a body: byte ranges in the file, from the first token to the last (leading
/// and trailing comments and the delimiter excluded), in order, empty statements skipped.
#[derive(Debug, Default)]
pub(crate) struct Split {
    pub statements: Vec<Range<usize>>,
    pub problems: Vec<Problem>,
}

/// How many leading words are kept to recognise a stored program (`CREATE OR REPLACE DEFINER =
/// 'a'@'b' AGGREGATE FUNCTION` is the longest head).
const HEAD_WORDS: usize = 10;

/// Splits the body `range` of `text`.
pub(crate) fn split(text: &str, range: Range<usize>) -> Split {
    let mut lexer = Lexer {
        bytes: text.as_bytes(),
        text,
        end: range.end,
        delimiter: ";".to_owned(),
        split: Split::default(),
        current: None,
    };
    lexer.run(range.start);
    lexer.split
}

/// The statement being read.
struct Current {
    start: usize,
    /// End of its last token so far.
    end: usize,
    /// Its first words, upper-cased, for recognising a stored program.
    head: Vec<String>,
    /// `BEGIN` / `CASE` nesting, counted against `END`.
    depth: u32,
    /// An `END` was read and the word after it decides what it closes.
    after_end: bool,
    /// Offsets of the `(` not closed yet.
    open_parens: Vec<usize>,
    /// Offset of the previous token when it was a `,`.
    comma: Option<usize>,
}

struct Lexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    end: usize,
    delimiter: String,
    split: Split,
    current: Option<Current>,
}

impl Lexer<'_> {
    fn run(&mut self, mut i: usize) {
        while i < self.end {
            if self.text[i..self.end].starts_with(self.delimiter.as_str()) && self.ends_here() {
                self.finish();
                i += self.delimiter.len();
                continue;
            }
            let b = self.bytes[i];
            i = match b {
                b if b.is_ascii_whitespace() => i + 1,
                b'#' => self.line_end(i),
                b'-' if self.is_dash_comment(i) => self.line_end(i),
                b'-' if self.current.is_none() && self.bytes.get(i + 1) == Some(&b'-') => {
                    self.split.problems.push(Problem {
                        offset: i,
                        message: "syntax error: `--` followed by text is not a comment in MySQL: \
                                  `--` starts a comment only when a space follows it, so the \
                                  server reads two minus signs here; write `-- ` (with a space) \
                                  or `#`"
                            .to_owned(),
                    });
                    // Read on as a comment, so that the rest of the file is still split.
                    self.line_end(i)
                }
                b'/' if self.bytes.get(i + 1) == Some(&b'*') => {
                    let close = match self.text[i + 2..self.end].find("*/") {
                        Some(at) => i + 2 + at + 2,
                        None => {
                            self.split.problems.push(Problem {
                                offset: i,
                                message: "syntax error: this `/*` comment is never closed: add \
                                          the `*/` that ends it"
                                    .to_owned(),
                            });
                            self.end
                        }
                    };
                    let code = matches!(self.bytes.get(i + 2), Some(b'!' | b'+'))
                        || self.text[i + 2..self.end].starts_with("M!");
                    if code {
                        self.token(i, close, None);
                    }
                    close
                }
                b'\'' | b'"' | b'`' => {
                    let close = self.quoted(i, b);
                    if close == self.end
                        && (close == i + 1
                            || self.bytes[close - 1] != b
                            || (b != b'`' && self.is_escaped(close - 1)))
                    {
                        self.split.problems.push(Problem {
                            offset: i,
                            message: format!(
                                "syntax error: this {} is never closed: add the `{}` that ends it \
                                 (inside it, write the quote itself doubled{})",
                                if b == b'`' {
                                    "quoted identifier"
                                } else {
                                    "string"
                                },
                                char::from(b),
                                if b == b'`' { "" } else { " or as `\\`-escaped" }
                            ),
                        });
                    }
                    self.token(i, close, None);
                    close
                }
                b if is_word_byte(b) => {
                    // A custom delimiter may be made of word bytes (`$$`) and follow a word
                    // directly (`END$$`).
                    let close = (i..self.end)
                        .find(|&j| {
                            !is_word_byte(self.bytes[j])
                                || (self.delimiter != ";"
                                    && self.text[j..self.end].starts_with(self.delimiter.as_str()))
                        })
                        .unwrap_or(self.end);
                    if self.at_statement_end() && self.is_delimiter_command(i, close) {
                        // Like the `mysql` client, a `DELIMITER` line also ends a statement
                        // left open under the old delimiter, once that statement's last token
                        // is a `;` (`END;` then `DELIMITER ;` where the delimiter was `//`).
                        self.finish();
                        self.delimiter_command(close)
                    } else {
                        let word = &self.text[i..close];
                        let qualified = i > 0 && self.bytes[i - 1] == b'.'
                            || self.bytes.get(close) == Some(&b'.');
                        self.token(i, close, (!qualified).then_some(word));
                        close
                    }
                }
                _ => {
                    // One ASCII punctuation byte (bytes >= 0x80 are word bytes).
                    self.token(i, i + 1, None);
                    i + 1
                }
            };
        }
        self.finish();
    }

    /// Whether the delimiter just found ends the current statement: a custom delimiter always
    /// does; `;` does unless it is inside a stored program's `BEGIN` ... `END`.
    fn ends_here(&mut self) -> bool {
        if self.delimiter != ";" {
            return true;
        }
        let Some(current) = &mut self.current else {
            return true;
        };
        if current.after_end {
            current.after_end = false;
            current.depth = current.depth.saturating_sub(1);
        }
        current.depth == 0 || !is_stored_program(&current.head)
    }

    /// Records a token `start..end` of the current statement (starting one if needed); `word` is
    /// the token when it is an unqualified word.
    fn token(&mut self, start: usize, end: usize, word: Option<&str>) {
        let current = self.current.get_or_insert_with(|| Current {
            start,
            end,
            head: Vec::new(),
            depth: 0,
            after_end: false,
            open_parens: Vec::new(),
            comma: None,
        });
        current.end = end;
        let punctuation = (end == start + 1).then(|| self.bytes[start]);
        if current.comma.take().is_some() && matches!(punctuation, Some(b',' | b')')) {
            self.split.problems.push(Problem {
                offset: start,
                message: format!(
                    "syntax error: `{}` right after a `,`, which no MySQL statement accepts: remove \
                     the extra comma, or add what is missing between them",
                    char::from(self.bytes[start])
                ),
            });
        }
        match punctuation {
            Some(b'(') => current.open_parens.push(start),
            Some(b')') if current.open_parens.pop().is_none() => {
                self.split.problems.push(Problem {
                    offset: start,
                    message: "syntax error: `)` without a matching `(`: remove it, or add the `(` \
                              it closes"
                        .to_owned(),
                });
            }
            Some(b',') => current.comma = Some(start),
            _ => {}
        }
        let Some(word) = word else {
            if current.after_end {
                current.after_end = false;
                current.depth = current.depth.saturating_sub(1);
            }
            return;
        };
        let upper = word.to_ascii_uppercase();
        if current.after_end {
            current.after_end = false;
            match upper.as_str() {
                // END IF / LOOP / WHILE / REPEAT close constructs that are not counted.
                "IF" | "LOOP" | "WHILE" | "REPEAT" => {}
                // END CASE closes a CASE statement, counted at its CASE.
                "CASE" => {
                    current.depth = current.depth.saturating_sub(1);
                    return;
                }
                // END, or END followed by its label.
                _ => current.depth = current.depth.saturating_sub(1),
            }
        }
        match upper.as_str() {
            "BEGIN" | "CASE" => current.depth += 1,
            "END" => current.after_end = true,
            _ => {}
        }
        if current.head.len() < HEAD_WORDS {
            current.head.push(upper);
        }
    }

    /// Whether no statement is open, or the open one ends with a `;` under a custom delimiter.
    fn at_statement_end(&self) -> bool {
        match &self.current {
            None => true,
            Some(c) => self.delimiter != ";" && c.end > c.start && self.bytes[c.end - 1] == b';',
        }
    }

    fn finish(&mut self) {
        if let Some(current) = self.current.take() {
            if let Some(&open) = current.open_parens.first() {
                self.split.problems.push(Problem {
                    offset: open,
                    message: "syntax error: this `(` is never closed before the statement ends: \
                              add the missing `)`"
                        .to_owned(),
                });
            }
            if let Some(comma) = current.comma {
                self.split.problems.push(Problem {
                    offset: comma,
                    message: "syntax error: the statement ends with a `,`: remove it, or add \
                              what should follow it"
                        .to_owned(),
                });
            }
            self.split.statements.push(current.start..current.end);
        }
    }

    /// The end of the line that starts at `i` (after its newline).
    fn line_end(&self, i: usize) -> usize {
        self.text[i..self.end]
            .find('\n')
            .map_or(self.end, |at| i + at + 1)
    }

    fn is_dash_comment(&self, i: usize) -> bool {
        self.bytes.get(i + 1) == Some(&b'-')
            && self.bytes.get(i + 2).is_none_or(|&b| {
                i + 2 >= self.end || b.is_ascii_whitespace() || b.is_ascii_control()
            })
    }

    /// The end of the string or quoted identifier opened at `i` by `quote`: a doubled quote is
    /// the quote itself; in strings (not in backticks) a backslash escapes the next byte.
    fn quoted(&self, i: usize, quote: u8) -> usize {
        let mut j = i + 1;
        while j < self.end {
            match self.bytes[j] {
                b'\\' if quote != b'`' => j += 2,
                b if b == quote => {
                    if self.bytes.get(j + 1) == Some(&quote) && j + 1 < self.end {
                        j += 2;
                    } else {
                        return j + 1;
                    }
                }
                _ => j += 1,
            }
        }
        self.end
    }

    /// Whether the quote at `at` is escaped by an odd run of backslashes before it.
    fn is_escaped(&self, at: usize) -> bool {
        self.bytes[..at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count()
            % 2
            == 1
    }

    /// Whether the word `start..end` is the `DELIMITER` command: the first word of its line,
    /// followed by a space or tab.
    fn is_delimiter_command(&self, start: usize, end: usize) -> bool {
        self.text[start..end].eq_ignore_ascii_case("delimiter")
            && matches!(self.bytes.get(end), Some(b' ' | b'\t'))
            && self.text[..start]
                .rsplit('\n')
                .next()
                .is_some_and(|before| before.trim().is_empty())
    }

    /// Reads the argument of a `DELIMITER` command whose word ends at `at`; returns where the
    /// next line starts.
    fn delimiter_command(&mut self, at: usize) -> usize {
        let next = self.line_end(at);
        match self.text[at..next].split_whitespace().next() {
            Some(delimiter) => self.delimiter = delimiter.to_owned(),
            None => self.split.problems.push(Problem {
                offset: at,
                message:
                    "`DELIMITER` without a delimiter: write the new statement delimiter \
                          after it on the same line (`DELIMITER $$`, then `DELIMITER ;` to go back)"
                        .to_owned(),
            }),
        }
        next
    }
}

/// Whether a byte can be part of an unquoted MySQL identifier or keyword (any non-ASCII byte
/// can: identifiers may hold any character of the Basic Multilingual Plane).
fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Whether a statement's first words make it a stored program, whose body the server reads to
/// its `END`: `CREATE [OR REPLACE] [DEFINER = user] [AGGREGATE] {PROCEDURE | FUNCTION | TRIGGER |
/// EVENT}`, or MariaDB's anonymous `BEGIN NOT ATOMIC` block.
fn is_stored_program(head: &[String]) -> bool {
    let word = |i: usize| head.get(i).map_or("", String::as_str);
    if word(0) == "BEGIN" {
        return word(1) == "NOT" && word(2) == "ATOMIC";
    }
    if word(0) != "CREATE" {
        return false;
    }
    let mut i = 1;
    if word(i) == "OR" && word(i + 1) == "REPLACE" {
        i += 2;
    }
    if word(i) == "DEFINER" {
        // The user: `'a'@'b'` and `` `a`@`b` `` are quoted (no words), `a@b` is two words,
        // `CURRENT_USER` one.
        i += 1;
        while i < head.len()
            && !is_program_kind(word(i))
            && !matches!(word(i), "AGGREGATE" | "VIEW" | "SQL" | "ALGORITHM")
        {
            i += 1;
        }
    }
    if word(i) == "AGGREGATE" {
        i += 1;
    }
    is_program_kind(word(i))
}

fn is_program_kind(word: &str) -> bool {
    matches!(word, "PROCEDURE" | "FUNCTION" | "TRIGGER" | "EVENT")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statements(text: &str) -> Vec<&str> {
        let s = split(text, 0..text.len());
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        s.statements.into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn splits_on_semicolons_outside_strings_identifiers_and_comments() {
        let text = "-- a comment; not a statement\n\
                    CREATE TABLE `a;b` (c VARCHAR(10) DEFAULT 'x;\\'y', d TEXT COMMENT \"it''s;\");\n\
                    # another; comment\n\
                    INSERT INTO `a;b` (c) VALUES ('/* no */'); /* trailing; */\n\
                    SELECT 1 --x;\n";
        assert_eq!(
            statements(text),
            [
                "CREATE TABLE `a;b` (c VARCHAR(10) DEFAULT 'x;\\'y', d TEXT COMMENT \"it''s;\")",
                "INSERT INTO `a;b` (c) VALUES ('/* no */')",
                // `--x` is not a comment in MySQL: two minus signs and x.
                "SELECT 1 --x",
            ]
        );
    }

    #[test]
    fn a_procedure_body_is_one_statement_without_delimiter() {
        let text = "CREATE DEFINER=`root`@`%` PROCEDURE p(IN n INT)\n\
                    BEGIN\n  DECLARE i INT DEFAULT 0;\n  lbl: WHILE i < n DO\n    \
                    IF i % 2 = 0 THEN SET i = i + 1; ELSE SET i = i + 2; END IF;\n    \
                    CASE i WHEN 1 THEN SELECT 1; ELSE BEGIN SELECT 2; END; END CASE;\n  \
                    END WHILE lbl;\n  SELECT CASE WHEN i > 0 THEN 'a' ELSE 'b' END;\nEND;\n\
                    CALL p(3);\n";
        let s = statements(text);
        assert_eq!(s.len(), 2, "{s:#?}");
        assert!(s[0].ends_with("'b' END;\nEND"), "{}", s[0]);
        assert_eq!(s[1], "CALL p(3)");
    }

    #[test]
    fn triggers_functions_and_events() {
        let text = "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = 1;\n\
                    CREATE OR REPLACE DEFINER = CURRENT_USER TRIGGER u AFTER UPDATE ON x \
                    FOR EACH ROW BEGIN INSERT INTO log VALUES (NEW.id); END;\n\
                    CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1;\n\
                    CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO BEGIN DELETE FROM x; END;\n\
                    BEGIN NOT ATOMIC SELECT 1; SELECT 2; END;\n\
                    BEGIN;\nUPDATE x SET a = 1;\nCOMMIT;\n";
        assert_eq!(
            statements(text),
            [
                "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = 1",
                "CREATE OR REPLACE DEFINER = CURRENT_USER TRIGGER u AFTER UPDATE ON x FOR EACH \
                 ROW BEGIN INSERT INTO log VALUES (NEW.id); END",
                "CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1",
                "CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO BEGIN DELETE FROM x; END",
                "BEGIN NOT ATOMIC SELECT 1; SELECT 2; END",
                "BEGIN",
                "UPDATE x SET a = 1",
                "COMMIT",
            ]
        );
    }

    #[test]
    fn begin_and_end_as_identifiers_outside_stored_programs() {
        let text = "CREATE TABLE event (begin DATETIME, end DATETIME);\n\
                    SELECT e.begin, e.end FROM event e;\nSELECT 2;\n";
        assert_eq!(statements(text).len(), 3);
    }

    #[test]
    fn delimiter_blocks() {
        let text = "DROP PROCEDURE IF EXISTS p;\n\
                    DELIMITER $$\n\
                    CREATE PROCEDURE p()\nBEGIN\n  SELECT 1;\n  SELECT 2;\nEND$$\n\
                    CALL p()$$\n\
                    delimiter ;\n\
                    DROP PROCEDURE p;\n\
                    DELIMITER //\nCREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN END//\n";
        let s = split(text, 0..text.len());
        let got: Vec<&str> = s.statements.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(
            got,
            [
                "DROP PROCEDURE IF EXISTS p",
                "CREATE PROCEDURE p()\nBEGIN\n  SELECT 1;\n  SELECT 2;\nEND",
                "CALL p()",
                "DROP PROCEDURE p",
                "CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN END",
            ]
        );
        // Ranges are the file's: the CALL starts on line 8.
        assert_eq!(text[..s.statements[2].start].matches('\n').count(), 7);
    }

    #[test]
    fn a_delimiter_line_ends_a_statement_left_open_under_the_old_delimiter() {
        // As in Apache DolphinScheduler's upgrade scripts: a `;`-terminated statement while
        // the delimiter is still `d//`, then `delimiter ;`.
        let text = "delimiter d//\nCREATE PROCEDURE p() BEGIN SELECT 1; END;\nd//\n\
                    UPDATE t SET a = 1;\n\ndelimiter ;\nCALL p();\n";
        assert_eq!(
            statements(text),
            [
                "CREATE PROCEDURE p() BEGIN SELECT 1; END;",
                "UPDATE t SET a = 1;",
                "CALL p()"
            ]
        );
        // A column named `delimiter` at the start of a line is not the command.
        let text = "CREATE TABLE t (\n  id INT,\n  delimiter VARCHAR(10)\n);\n";
        assert_eq!(statements(text).len(), 1);
    }

    #[test]
    fn executable_comments_are_code() {
        let text =
            "/*!40101 SET NAMES utf8 */;\n/* plain; */\nSELECT /*+ MAX_EXECUTION_TIME(1) */ 1;\n";
        assert_eq!(
            statements(text),
            [
                "/*!40101 SET NAMES utf8 */",
                "SELECT /*+ MAX_EXECUTION_TIME(1) */ 1"
            ]
        );
    }

    #[test]
    fn a_delimiter_without_argument_is_a_problem() {
        let text = "DELIMITER \nSELECT 1;\n";
        let s = split(text, 0..text.len());
        assert_eq!(s.problems.len(), 1);
        assert!(s.problems[0].message.contains("DELIMITER $$"));
    }

    /// The problems of `text`, as `(offset, message)`.
    fn problems(text: &str) -> Vec<(usize, String)> {
        split(text, 0..text.len())
            .problems
            .into_iter()
            .map(|p| (p.offset, p.message))
            .collect()
    }

    #[test]
    fn certain_syntax_errors() {
        let p = problems("CREATE TABLE t (\n  id INT,,\n  x INT\n);\nSELECT 1;\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "CREATE TABLE t (\n  id INT,".len());
        let p = problems("CREATE TABLE t (id INT, x INT,\n);\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].1.contains("`)` right after a `,`"), "{p:?}");
        let p = problems("INSERT INTO t VALUES (1), (2),;\n");
        assert!(p[0].1.contains("ends with a `,`"), "{p:?}");
        let p = problems("UPDATE t SET a = (1;\nSELECT 2;\n");
        assert_eq!(p[0].0, "UPDATE t SET a = ".len());
        let p = problems("SELECT 1);\n");
        assert!(p[0].1.contains("without a matching `(`"), "{p:?}");
        let p = problems("INSERT INTO t VALUES ('it\\'s);\n");
        assert!(p[0].1.contains("string is never closed"), "{p:?}");
        let p = problems("SELECT `a;\n");
        assert!(
            p[0].1.contains("quoted identifier is never closed"),
            "{p:?}"
        );
        let p = problems("SELECT 1; /* open\n");
        assert!(p[0].1.contains("`/*` comment is never closed"), "{p:?}");
        // Found in Apache DolphinScheduler's upgrade scripts.
        let p = problems("--DROP PROCEDURE if EXISTS p;\nSELECT 1;\n");
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].1.contains("not a comment in MySQL"), "{p:?}");
    }

    #[test]
    fn what_is_valid_raises_nothing() {
        for text in [
            "INSERT INTO t () VALUES ();",
            "SELECT 'a,,b', \"(\", `x,)` FROM t WHERE a = 1 --1\n;",
            "UPDATE t1, t2 SET t1.a = t2.a WHERE t1.id = t2.id;",
            "SELECT 'it''s', 'a\\'b', \"q\"\"q\";",
            "SELECT 1 -- trailing, comment (\n;",
            "CREATE TABLE t (a DECIMAL(10, 2), KEY (a)) COMMENT = 'x, )';",
        ] {
            assert_eq!(problems(text), [], "{text}");
        }
    }

    #[test]
    fn ranges_are_within_the_body() {
        let text = "-- +goose Up\nCREATE TABLE a (id INT);\n-- +goose Down\nDROP TABLE a;\n";
        let up_end = text.find("-- +goose Down").unwrap();
        let s = split(text, 0..up_end);
        assert_eq!(s.statements.len(), 1);
        assert_eq!(&text[s.statements[0].clone()], "CREATE TABLE a (id INT)");
    }
}
