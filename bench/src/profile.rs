//! `--profile`: what each tool sends, counted through a proxy between it and the server
//! (round trips = bursts of client messages separated by server replies; pipelined messages
//! count once), and a probe of the ways to apply N light migrations, to say what the runner
//! could change.

use std::collections::BTreeMap;
use std::future::{poll_fn, Future};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use preflight_runtime::testing::TestDatabase;
use tokio::runtime::Runtime;

use crate::gen::{self, Shape};
use crate::stats::Samples;
use crate::tools::{boot, Prepared, Tool};

/// What went through the proxy on all connections since the last reset.
#[derive(Debug, Default, Clone)]
struct Traffic {
    connections: usize,
    round_trips: usize,
    messages: usize,
    /// Statement texts (simple `Q` and extended `P`), in order.
    statements: Vec<String>,
}

#[derive(Default)]
struct Conn {
    client_turn: bool,
    untyped: bool,
    buf: Vec<u8>,
}

struct Proxy {
    port: u16,
    traffic: Arc<Mutex<Traffic>>,
}

impl Proxy {
    fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the profiling proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let traffic = Arc::new(Mutex::new(Traffic::default()));
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
                if let Ok(mut tr) = t.lock() {
                    tr.connections += 1;
                }
                pump(client.try_clone().ok(), server.try_clone().ok(), {
                    let t = t.clone();
                    let conn = conn.clone();
                    move |bytes: &[u8]| client_bytes(&t, &conn, bytes)
                });
                pump(Some(server), Some(client), move |_: &[u8]| {
                    if let Ok(mut c) = conn.lock() {
                        c.client_turn = false;
                    }
                });
            }
        });
        Proxy { port, traffic }
    }

    fn take(&self) -> Traffic {
        std::mem::take(&mut *self.traffic.lock().expect("proxy state"))
    }
}

/// Copies `from` to `to` on a thread, calling `seen` before forwarding each chunk.
fn pump(
    from: Option<TcpStream>,
    to: Option<TcpStream>,
    mut seen: impl FnMut(&[u8]) + Send + 'static,
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
        let text = |b: &[u8]| {
            let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
            String::from_utf8_lossy(&b[..end]).into_owned()
        };
        match kind {
            b'Q' => tr.statements.push(text(&body)),
            b'P' => {
                let name_end = body.iter().position(|&x| x == 0).unwrap_or(0);
                tr.statements.push(text(&body[name_end + 1..]));
            }
            // Terminate gets no reply: not a round trip.
            b'X' => continue,
            _ => {}
        }
        if new_burst {
            tr.round_trips += 1;
            new_burst = false;
        }
    }
}

/// `host:port` of a `postgres://` URL, and the URL pointed at `port` on 127.0.0.1 instead.
fn via_proxy(url: &str, port: u16) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let upstream = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    let proxied = url.replacen(hostport, &format!("127.0.0.1:{port}"), 1);
    Some((upstream, proxied))
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
    for (i, s) in tr.statements.iter().enumerate() {
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

pub fn run(rt: &Runtime, work: &Path) -> String {
    let admin = preflight_runtime::testing::server_url();
    let Some(probe_url) = via_proxy(admin, 0) else {
        return "--profile needs a postgres:// URL\n".to_owned();
    };
    let proxy = Proxy::start(probe_url.0);
    let proxied = |url: &str| {
        via_proxy(url, proxy.port)
            .map(|(_, p)| p)
            .expect("a postgres:// URL")
    };
    let mut out = String::from("## Round trips and statements (through a counting proxy)\n\n");

    let n = 1000;
    let set = gen::write(work, Shape::Light, n);
    let prepared = Prepared::new(rt, &set);
    out.push_str(&format!("### No-op boot, {n} applied\n\n"));
    for tool in [
        Tool::ConnectSelect1,
        Tool::Preflight,
        Tool::PreflightSync,
        Tool::Refinery,
        Tool::Sqlx,
    ] {
        let db = TestDatabase::empty();
        let setup = if tool == Tool::PreflightSync {
            Tool::Preflight
        } else {
            tool
        };
        if let Err(e) = boot(rt, setup, db.url(), &prepared) {
            out.push_str(&format!("{}: setup failed: {e}\n\n", tool.name()));
            continue;
        }
        proxy.take();
        let r = boot(rt, tool, &proxied(db.url()), &prepared);
        std::thread::sleep(Duration::from_millis(50));
        let tr = proxy.take();
        match r {
            Ok(_) => out.push_str(&summary(tool.name(), &tr, None)),
            Err(e) => out.push_str(&format!("{}: {e}\n\n", tool.name())),
        }
    }

    let n = 100;
    for shape in [Shape::Light] {
        let set = gen::write(work, shape, n);
        let prepared = Prepared::new(rt, &set);
        out.push_str(&format!(
            "### Apply {n} {} migrations to an empty database\n\n",
            shape.label()
        ));
        for tool in [
            Tool::Preflight,
            Tool::PreflightSync,
            Tool::Refinery,
            Tool::Sqlx,
        ] {
            let db = TestDatabase::empty();
            proxy.take();
            let r = boot(rt, tool, &proxied(db.url()), &prepared);
            std::thread::sleep(Duration::from_millis(50));
            let tr = proxy.take();
            match r {
                Ok(_) => out.push_str(&summary(tool.name(), &tr, Some(n))),
                Err(e) => out.push_str(&format!("{}: {e}\n\n", tool.name())),
            }
        }
    }
    out.push_str(&probe(rt, work));
    out
}

/// Ways of applying 1,000 light migrations, each with its own transaction and history row,
/// directly on the server: what the runner could do.
fn probe(rt: &Runtime, work: &Path) -> String {
    let n = 1000u32;
    let rounds = 5;
    let set = gen::write(work, Shape::Light, n);
    let prepared = Prepared::new(rt, &set);
    let variants: [(&str, Variant); 4] = [
        (
            "one round trip per migration (BEGIN; body; history INSERT; COMMIT)",
            Variant::PerMigration {
                async_commit: false,
                pipelined: false,
            },
        ),
        (
            "same, `SET LOCAL synchronous_commit = off` in all but the last",
            Variant::PerMigration {
                async_commit: true,
                pipelined: false,
            },
        ),
        (
            "same as the previous, pipelined (all sent before reading replies)",
            Variant::PerMigration {
                async_commit: true,
                pipelined: true,
            },
        ),
        (
            "pipelined, synchronous commits",
            Variant::PerMigration {
                async_commit: false,
                pipelined: true,
            },
        ),
    ];
    let mut samples: Vec<Samples> = vec![Samples::default(); variants.len() + 1];
    for round in 0..rounds {
        for k in 0..=variants.len() {
            let i = (k + round) % (variants.len() + 1);
            let db = TestDatabase::empty();
            let r = if i == variants.len() {
                boot(rt, Tool::Psql, db.url(), &prepared).map(|o| o.elapsed)
            } else {
                rt.block_on(apply_variant(db.url(), &set.migrations, variants[i].1))
            };
            match r {
                Ok(d) => samples[i].push(d),
                Err(e) => eprintln!("probe failed: {e}"),
            }
        }
    }
    let mut out = format!(
        "### Probe: {n} light migrations, each in its own transaction with a history row \
         (tokio-postgres, simple queries, connect included)\n\n| how | time |\n|---|---|\n"
    );
    for (i, (label, _)) in variants.iter().enumerate() {
        out.push_str(&format!("| {label} | {} |\n", samples[i].cell()));
    }
    out.push_str(&format!(
        "| floor: `psql -1 -f` (one transaction for all) | {} |\n\n",
        samples[variants.len()].cell()
    ));
    out
}

#[derive(Clone, Copy)]
enum Variant {
    PerMigration { async_commit: bool, pipelined: bool },
}

async fn apply_variant(
    url: &str,
    migrations: &[gen::Generated],
    variant: Variant,
) -> Result<Duration, String> {
    let Variant::PerMigration {
        async_commit,
        pipelined,
    } = variant;
    let start = Instant::now();
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS probe_history (version bigint PRIMARY KEY, name text NOT NULL, \
             checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(|e| e.to_string())?;
    let last = migrations.len().saturating_sub(1);
    let scripts: Vec<String> = migrations
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let local = if async_commit && i != last {
                "SET LOCAL synchronous_commit = off;\n"
            } else {
                ""
            };
            format!(
                "BEGIN;\n{local}{}INSERT INTO probe_history (version, name, checksum) VALUES ({}, '{}', '{:064x}');\nCOMMIT;",
                m.sql, m.version, m.name, m.version
            )
        })
        .collect();
    if pipelined {
        // Polled together, in order: every script is written before the first reply is read.
        type Request<'a> = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + 'a>>;
        let mut requests: Vec<Option<Request<'_>>> = scripts
            .iter()
            .map(|s| Some(Box::pin(client.batch_execute(s)) as Request<'_>))
            .collect();
        let mut first_error = None;
        poll_fn(|cx| {
            let mut pending = false;
            for slot in requests.iter_mut() {
                if let Some(request) = slot {
                    match request.as_mut().poll(cx) {
                        Poll::Ready(r) => {
                            if let (Err(e), None) = (r, &first_error) {
                                first_error = Some(e.to_string());
                            }
                            *slot = None;
                        }
                        Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        if let Some(e) = first_error {
            return Err(e);
        }
    } else {
        for s in &scripts {
            client.batch_execute(s).await.map_err(|e| e.to_string())?;
        }
    }
    let elapsed = start.elapsed();
    drop(client);
    let _ = driver.await;
    Ok(elapsed)
}
