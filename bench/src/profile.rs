//! `--profile` (and part of `--all`): what each tool sends, counted through a proxy between it
//! and the server (round trips = bursts of client messages separated by server replies;
//! pipelined messages count once), and for the deploy how many round trips come before the
//! first migration.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use preflight_runtime::testing::TestDatabase;
use tokio::runtime::Runtime;

use crate::gen::{self, Shape};
use crate::proxy::redirect;
use crate::scenarios::DbCopy;
use crate::tools::{boot, Prepared, Tool};

/// What went through the proxy on all connections since the last reset.
#[derive(Debug, Default, Clone)]
struct Traffic {
    connections: usize,
    round_trips: usize,
    messages: usize,
    /// Statement texts (simple `Q` and extended `P`), in order, each with the round trip
    /// (counted from 1, the startup) that carried it.
    statements: Vec<(String, usize)>,
    /// Connections whose client has not closed yet.
    open: usize,
}

#[derive(Default)]
struct Conn {
    client_turn: bool,
    untyped: bool,
    buf: Vec<u8>,
}

struct Proxy {
    port: u16,
    traffic: Arc<(Mutex<Traffic>, Condvar)>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the profiling proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let traffic = Arc::new((Mutex::new(Traffic::default()), Condvar::new()));
        let t = traffic.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let conn = Arc::new(Mutex::new(Conn {
                    untyped: true,
                    ..Conn::default()
                }));
                if let Ok(mut tr) = t.0.lock() {
                    tr.connections += 1;
                    tr.open += 1;
                }
                let closed = {
                    let t = t.clone();
                    move || {
                        if let Ok(mut tr) = t.0.lock() {
                            tr.open = tr.open.saturating_sub(1);
                        }
                        t.1.notify_all();
                    }
                };
                pump(
                    client.try_clone().ok(),
                    server.try_clone().ok(),
                    {
                        let t = t.clone();
                        let conn = conn.clone();
                        move |bytes: &[u8]| client_bytes(&t.0, &conn, bytes)
                    },
                    closed,
                );
                pump(
                    Some(server),
                    Some(client),
                    move |_: &[u8]| {
                        if let Ok(mut c) = conn.lock() {
                            c.client_turn = false;
                        }
                    },
                    || {},
                );
            }
        });
        Proxy { port, traffic }
    }

    /// What went through since the last call, once every client connection has closed (a
    /// tool's last messages, such as `Terminate`, reach the proxy after the tool returned).
    fn take(&self) -> Traffic {
        let (lock, closed) = &*self.traffic;
        let guard = lock.lock().expect("proxy state");
        let (mut guard, _) = closed
            .wait_timeout_while(guard, Duration::from_secs(10), |t| t.open > 0)
            .expect("proxy state");
        let open = guard.open;
        let mut taken = std::mem::take(&mut *guard);
        guard.open = open;
        taken.open = open;
        taken
    }
}

/// Copies `from` to `to` on a thread, calling `seen` before forwarding each chunk and `done`
/// when `from` has closed.
fn pump(
    from: Option<TcpStream>,
    to: Option<TcpStream>,
    mut seen: impl FnMut(&[u8]) + Send + 'static,
    done: impl FnOnce() + Send + 'static,
) {
    let (Some(mut from), Some(mut to)) = (from, to) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    seen(&buf[..n]);
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        done();
    });
}

fn client_bytes(t: &Mutex<Traffic>, conn: &Mutex<Conn>, bytes: &[u8]) {
    let (Ok(mut tr), Ok(mut c)) = (t.lock(), conn.lock()) else {
        return;
    };
    c.buf.extend_from_slice(bytes);
    let mut new_burst = !c.client_turn;
    c.client_turn = true;
    loop {
        if c.untyped {
            if c.buf.len() < 8 {
                break;
            }
            let len = u32::from_be_bytes([c.buf[0], c.buf[1], c.buf[2], c.buf[3]]) as usize;
            let code = u32::from_be_bytes([c.buf[4], c.buf[5], c.buf[6], c.buf[7]]);
            if c.buf.len() < len || len < 8 {
                break;
            }
            c.buf.drain(..len);
            tr.messages += 1;
            // SSLRequest / GSSENCRequest are followed by another untyped message.
            c.untyped = code == 80_877_103 || code == 80_877_104;
            if new_burst {
                tr.round_trips += 1;
                new_burst = false;
            }
            continue;
        }
        if c.buf.len() < 5 {
            break;
        }
        let kind = c.buf[0];
        let len = u32::from_be_bytes([c.buf[1], c.buf[2], c.buf[3], c.buf[4]]) as usize;
        if c.buf.len() < len + 1 {
            break;
        }
        let body: Vec<u8> = c.buf[5..len + 1].to_vec();
        c.buf.drain(..len + 1);
        tr.messages += 1;
        // Terminate gets no reply: not a round trip.
        if kind == b'X' {
            continue;
        }
        if new_burst {
            tr.round_trips += 1;
            new_burst = false;
        }
        let text = |b: &[u8]| {
            let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
            String::from_utf8_lossy(&b[..end]).into_owned()
        };
        let trip = tr.round_trips;
        match kind {
            b'Q' => tr.statements.push((text(&body), trip)),
            b'P' => {
                let name_end = body.iter().position(|&x| x == 0).unwrap_or(0);
                tr.statements.push((text(&body[name_end + 1..]), trip));
            }
            _ => {}
        }
    }
}

/// Digits → `N`, whitespace squeezed, cut: statements grouped by shape.
fn shape_of(sql: &str) -> String {
    let mut out = String::new();
    let mut last_digit = false;
    for ch in sql.split_whitespace().collect::<Vec<_>>().join(" ").chars() {
        if ch.is_ascii_digit() {
            if !last_digit {
                out.push('N');
            }
            last_digit = true;
        } else {
            out.push(ch);
            last_digit = false;
        }
    }
    if out.chars().count() > 110 {
        out = format!("{}…", out.chars().take(110).collect::<String>());
    }
    out.replace('|', "/")
}

fn summary(label: &str, tr: &Traffic, per: Option<u32>) -> String {
    let mut shapes: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, (s, _)) in tr.statements.iter().enumerate() {
        let e = shapes.entry(shape_of(s)).or_insert((0, i));
        e.0 += 1;
    }
    let mut shapes: Vec<_> = shapes.into_iter().collect();
    shapes.sort_by_key(|(_, (_, first))| *first);
    let mut out = format!(
        "**{label}**: {} round trip(s) on {} connection(s) (the startup is one each), {} messages",
        tr.round_trips, tr.connections, tr.messages
    );
    if let Some(n) = per {
        out.push_str(&format!(
            ", {:.2} round trips per migration",
            tr.round_trips as f64 / f64::from(n)
        ));
    }
    out.push_str("\n\n```text\n");
    for (shape, (count, _)) in shapes {
        out.push_str(&format!("{count:>5} × {shape}\n"));
    }
    out.push_str("```\n\n");
    out
}

/// The round-trip section of the report.
pub fn run(rt: &Runtime, work: &Path) -> String {
    let admin = preflight_runtime::testing::server_url();
    let Some((upstream, _)) = redirect(admin, 0) else {
        return "--profile needs a postgres:// URL\n".to_owned();
    };
    let proxy = Proxy::start(upstream);
    let proxied = |url: &str| {
        redirect(url, proxy.port)
            .map(|(_, p)| p)
            .expect("a postgres:// URL")
    };
    let mut out = String::from(
        "### Round trips and statements (through a counting proxy)\n\n\
         Statements grouped by shape (digits → `N`), in order of first appearance; a round trip \
         is a burst of client messages answered by the server, the startup counting as one.\n\n",
    );

    let n = 1000;
    let set = gen::write(work, Shape::Light, n);
    let prepared = Prepared::new(rt, &set);
    out.push_str(&format!("#### No-op boot, {n} applied\n\n"));
    for tool in [
        Tool::ConnectSelect1,
        Tool::Preflight,
        Tool::PreflightBlocking,
        Tool::Refinery,
        Tool::Sqlx,
    ] {
        let db = TestDatabase::empty();
        if let Err(e) = boot(rt, tool.setup(), db.url(), &prepared) {
            out.push_str(&format!("{}: setup failed: {e}\n\n", tool.label()));
            continue;
        }
        proxy.take();
        let r = boot(rt, tool, &proxied(db.url()), &prepared);
        let tr = proxy.take();
        match r {
            Ok(_) => out.push_str(&summary(tool.label(), &tr, None)),
            Err(e) => out.push_str(&format!("{}: {e}\n\n", tool.label())),
        }
    }

    let profiled = [
        Tool::Preflight,
        Tool::PreflightSynced,
        Tool::PreflightBlocking,
        Tool::Refinery,
        Tool::RefineryGrouped,
        Tool::Sqlx,
    ];
    let n = 100;
    let set = gen::write(work, Shape::Light, n);
    let prepared = Prepared::new(rt, &set);
    out.push_str(&format!(
        "#### Apply {n} light migrations to an empty database\n\n"
    ));
    for tool in profiled {
        let db = TestDatabase::empty();
        proxy.take();
        let r = boot(rt, tool, &proxied(db.url()), &prepared);
        let tr = proxy.take();
        match r {
            Ok(_) => out.push_str(&summary(tool.label(), &tr, Some(n))),
            Err(e) => out.push_str(&format!("{}: {e}\n\n", tool.label())),
        }
    }

    let (base, new) = (1000u32, 3u32);
    let before = gen::write(work, Shape::Light, base);
    let after = gen::write(work, Shape::Light, base + new);
    let setup = Prepared::new(rt, &before);
    let prepared = Prepared::deploy(rt, &after, new as usize);
    out.push_str(&format!(
        "#### Deploy: {new} new migrations on top of {base} applied\n\n"
    ));
    let first_new = format!("VALUES ({}, ", base + 1);
    for tool in profiled {
        let template = TestDatabase::empty();
        if let Err(e) = boot(rt, tool.setup(), template.url(), &setup) {
            out.push_str(&format!("{}: setup failed: {e}\n\n", tool.label()));
            continue;
        }
        let copy = match DbCopy::of(&template, "profile") {
            Ok(c) => c,
            Err(e) => {
                out.push_str(&format!("{}: {e}\n\n", tool.label()));
                continue;
            }
        };
        proxy.take();
        let r = boot(rt, tool, &proxied(copy.url()), &prepared);
        let tr = proxy.take();
        match r {
            Ok(_) => {
                let before_first = tr
                    .statements
                    .iter()
                    .find(|(s, _)| s.contains(&first_new))
                    .map(|(_, trip)| trip - 1);
                let mut text = summary(tool.label(), &tr, None);
                if let Some(k) = before_first {
                    text = text.replacen(
                        " messages\n",
                        &format!(
                            " messages; {k} round trip(s) before the one carrying the first \
                             new migration\n"
                        ),
                        1,
                    );
                }
                out.push_str(&text);
            }
            Err(e) => out.push_str(&format!("{}: {e}\n\n", tool.label())),
        }
    }
    out
}
