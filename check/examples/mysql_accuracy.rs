//! Measures sqlparser's MySQL grammar against a real server, on real migration directories:
//! the numbers of `COMPATIBILITY.md`'s MySQL section.
//!
//! ```sh
//! cargo run -p preflight-check --features mysql --example mysql_accuracy -- DIR...
//! ```
//!
//! Each `DIR` holds the up migrations of one project as `.sql` files whose names sort in the order
//! they apply. For each directory a throwaway database is created on the server of `MYSQL_URL`
//! (default `mysql://root@127.0.0.1:3306`, through the `mariadb` client, which must be
//! installed), every statement — split by `preflight_check::mysql::split` — runs there in order
//! in one session, and its outcome is compared with sqlparser's verdict: a statement sqlparser
//! refuses and the server parses (any error but 1064 / 1149, "You have an error in your SQL
//! syntax") is a false refusal; one sqlparser accepts and the server cannot parse is a miss.
//! Every statement either side refuses is printed (`FALSE-REFUSAL`, `MISS`, `BOTH-REFUSE`) with
//! its file, line and first line of text, then one summary line per directory and a total.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The client's delimiter while the statements are fed (the client allows 16 bytes at most):
/// no real statement contains it.
const DELIMITER: &str = "$$pf_accuracy$$";

struct Outcome {
    /// The statement's kind: its first word, and the second after CREATE, ALTER or DROP.
    kind: String,
    file: String,
    line: usize,
    text: String,
    sqlparser: Option<String>,
    server: Option<String>,
}

fn main() {
    let dirs: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    if dirs.is_empty() {
        eprintln!("usage: mysql_accuracy DIR...");
        std::process::exit(2);
    }
    let url = std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into());
    let server = Server::from_url(&url);
    let mut totals = [0usize; 5];
    // Per kind: statements, sqlparser refusals, false refusals.
    let mut kinds: std::collections::BTreeMap<String, [usize; 3]> = Default::default();
    for (n, dir) in dirs.iter().enumerate() {
        let outcomes = measure(&server, dir, n);
        let count = |f: &dyn Fn(&Outcome) -> bool| outcomes.iter().filter(|o| f(o)).count();
        let refused = count(&|o| o.sqlparser.is_some());
        let server_syntax = count(&|o| o.server.as_deref().is_some_and(is_syntax_error));
        let false_refusals =
            count(&|o| o.sqlparser.is_some() && !o.server.as_deref().is_some_and(is_syntax_error));
        let misses =
            count(&|o| o.sqlparser.is_none() && o.server.as_deref().is_some_and(is_syntax_error));
        let preflight = preflight_errors(dir);
        for e in &preflight {
            println!("PREFLIGHT-ERROR\t{}", e.lines().next().unwrap_or_default());
        }
        for o in &outcomes {
            let k = kinds.entry(o.kind.clone()).or_default();
            k[0] += 1;
            k[1] += usize::from(o.sqlparser.is_some());
            k[2] += usize::from(
                o.sqlparser.is_some() && !o.server.as_deref().is_some_and(is_syntax_error),
            );
        }
        for o in &outcomes {
            let server_refused = o.server.as_deref().is_some_and(is_syntax_error);
            if o.sqlparser.is_some() || server_refused {
                println!(
                    "{}\t{}:{}\t{}\tsqlparser: {}\tserver: {}",
                    match (o.sqlparser.is_some(), server_refused) {
                        (true, true) => "BOTH-REFUSE",
                        (false, true) => "MISS",
                        _ => "FALSE-REFUSAL",
                    },
                    o.file,
                    o.line,
                    o.text,
                    o.sqlparser.as_deref().unwrap_or("ok"),
                    o.server.as_deref().unwrap_or("ok"),
                );
            }
        }
        println!(
            "SUMMARY\t{}\tstatements {}\tsqlparser refused {}\tserver syntax errors {}\t\
             false refusals {}\tmisses {}\tpreflight errors {}",
            dir.display(),
            outcomes.len(),
            refused,
            server_syntax,
            false_refusals,
            misses,
            preflight.len()
        );
        for (t, v) in totals.iter_mut().zip([
            outcomes.len(),
            refused,
            server_syntax,
            false_refusals,
            misses,
        ]) {
            *t += v;
        }
    }
    for (kind, [n, refused, false_refusals]) in &kinds {
        println!(
            "KIND\t{kind}\tstatements {n}\tsqlparser refused {refused}\tfalse refusals {false_refusals}"
        );
    }
    println!(
        "TOTAL\t{} directories\tstatements {}\tsqlparser refused {}\tserver syntax errors {}\t\
         false refusals {}\tmisses {}",
        dirs.len(),
        totals[0],
        totals[1],
        totals[2],
        totals[3],
        totals[4]
    );
}

/// Preflight's own verdict, through `check_dir` in the `mysql` dialect as `embed!` runs it: the
/// directory's files copied as a forward-only set (`{n}_m.sql`, in order); its errors, displayed.
fn preflight_errors(dir: &Path) -> Vec<String> {
    let copy = tempfile::tempdir().expect("temporary directory");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read the directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    for (n, path) in files.iter().enumerate() {
        std::fs::copy(path, copy.path().join(format!("{}_m.sql", n + 1))).expect("copy a file");
    }
    let options = preflight_check::Options::default().dialect(preflight_check::Dialect::Mysql);
    match preflight_check::check_dir(copy.path(), &dir.display().to_string(), &options) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// A statement's kind for the summary: `CREATE TABLE`, `INSERT`, ...
fn kind(statement: &str) -> String {
    let words: Vec<String> = statement
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty() && !w.chars().all(|c| c.is_ascii_digit()))
        .take(6)
        .map(str::to_ascii_uppercase)
        .collect();
    let first = words.first().cloned().unwrap_or_default();
    if !matches!(first.as_str(), "CREATE" | "ALTER" | "DROP") {
        return first;
    }
    let second = words[1..]
        .iter()
        .find(|w| {
            !matches!(
                w.as_str(),
                "OR" | "REPLACE"
                    | "DEFINER"
                    | "CURRENT_USER"
                    | "ROOT"
                    | "LOCALHOST"
                    | "UNIQUE"
                    | "FULLTEXT"
                    | "SPATIAL"
                    | "TEMPORARY"
                    | "IF"
                    | "NOT"
                    | "EXISTS"
                    | "ONLINE"
                    | "IGNORE"
                    | "ALGORITHM"
                    | "SQL"
                    | "SECURITY"
                    | "INVOKER"
                    | "MERGE"
                    | "UNDEFINED"
                    | "TEMPTABLE"
                    | "AGGREGATE"
            )
        })
        .cloned()
        .unwrap_or_default();
    format!("{first} {second}")
}

/// MariaDB's and MySQL's "You have an error in your SQL syntax" (1064) and "syntax error" (1149).
fn is_syntax_error(server: &str) -> bool {
    server.starts_with("ERROR 1064") || server.starts_with("ERROR 1149")
}

fn measure(server: &Server, dir: &Path, n: usize) -> Vec<Outcome> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut outcomes = Vec::new();
    let mut script = String::new();
    script.push_str(&format!("DELIMITER {DELIMITER}\n"));
    for path in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim_start_matches('\u{feff}');
        for range in preflight_check::mysql::split(text) {
            let statement = &text[range.clone()];
            script.push_str(&format!(
                "SELECT 'preflight-mark {}'{DELIMITER}\n{statement}{DELIMITER}\n",
                outcomes.len()
            ));
            outcomes.push(Outcome {
                kind: kind(statement),
                file: path
                    .file_name()
                    .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
                line: text[..range.start].matches('\n').count() + 1,
                text: statement
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(100)
                    .collect(),
                sqlparser: preflight_check::mysql::sqlparser_refusal(statement)
                    .map(|m| m.chars().take(160).collect()),
                server: None,
            });
        }
    }
    let database = format!("preflight_accuracy_{}_{n}", std::process::id());
    server.run(None, &format!("CREATE DATABASE `{database}`"));
    let output = server.run(Some(&database), &script);
    server.run(None, &format!("DROP DATABASE `{database}`"));
    let mut current = None;
    for line in output.lines() {
        if let Some(i) = line.strip_prefix("preflight-mark ") {
            current = i.trim().parse::<usize>().ok();
        } else if line.starts_with("ERROR ") {
            if let Some(o) = current.and_then(|i| outcomes.get_mut(i)) {
                let message = line.split_once(": ").map_or(line, |(_, m)| m);
                let code: String = line.chars().take(10).collect();
                o.server.get_or_insert_with(|| {
                    format!("{code}: {}", message.chars().take(160).collect::<String>())
                });
            }
        }
    }
    outcomes
}

/// The server, reached through the `mariadb` command-line client.
struct Server {
    args: Vec<String>,
    password: Option<String>,
}

impl Server {
    /// `mysql://user[:password]@host[:port]`.
    fn from_url(url: &str) -> Server {
        let rest = url
            .strip_prefix("mysql://")
            .or_else(|| url.strip_prefix("mariadb://"))
            .expect("MYSQL_URL is mysql://user[:password]@host[:port]");
        let rest = rest.split('/').next().unwrap_or_default();
        let (user, host) = rest.rsplit_once('@').unwrap_or(("root", rest));
        let (user, password) = match user.split_once(':') {
            Some((u, p)) => (u, Some(p.to_owned())),
            None => (user, None),
        };
        let (host, port) = host.split_once(':').unwrap_or((host, "3306"));
        Server {
            args: vec![
                "--protocol=tcp".into(),
                format!("--host={host}"),
                format!("--port={port}"),
                format!("--user={user}"),
            ],
            password,
        }
    }

    /// Runs `script` in the client (errors do not stop it); stdout and stderr, interleaved.
    fn run(&self, database: Option<&str>, script: &str) -> String {
        let mut command = Command::new("sh");
        let mut client = String::from(
            "exec mariadb \"$@\" --force --unbuffered --batch --skip-column-names --comments 2>&1",
        );
        if let Some(d) = database {
            client.push_str(&format!(" --database={d}"));
        }
        command
            .arg("-c")
            .arg(client)
            .arg("mariadb")
            .args(&self.args);
        if let Some(p) = &self.password {
            // Through the environment, never on the command line.
            command.env("MYSQL_PWD", p);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run the mariadb client (apt-get install -y mariadb-client)");
        let mut stdin = child.stdin.take().expect("client stdin");
        let script = script.to_owned();
        let writer = std::thread::spawn(move || stdin.write_all(script.as_bytes()));
        let output = child.wait_with_output().expect("mariadb client output");
        writer
            .join()
            .expect("writer thread")
            .expect("write the script to the client");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}
