//! A TCP proxy on loopback that delays every byte by a fixed time in each direction: the
//! latency scenario's "network". Each direction has a reader, which stamps every chunk with
//! the moment it arrived, and a writer, which forwards the chunks in order, each no earlier
//! than its stamp plus the delay. So pipelined requests stay pipelined (the delay is added
//! once per trip, not once per message), like `tc netem` on an interface, without needing
//! root or touching the host's network (other work shares this machine).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running delaying proxy to one upstream address.
pub struct DelayProxy {
    port: u16,
}

impl DelayProxy {
    /// Listens on an ephemeral port of 127.0.0.1 and forwards every connection to `upstream`
    /// (`host:port`), `one_way` later in each direction.
    pub fn start(upstream: String, one_way: Duration) -> std::io::Result<DelayProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                forward(client, s2, one_way);
                forward(server, c2, one_way);
            }
        });
        Ok(DelayProxy { port })
    }

    /// `url` (a `postgres://` URL) pointed at this proxy.
    pub fn url(&self, url: &str) -> String {
        redirect(url, self.port)
            .map(|(_, u)| u)
            .unwrap_or_else(|| url.to_owned())
    }
}

/// Copies `from` to `to`, each chunk `delay` after it arrived, in order.
fn forward(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    });
    std::thread::spawn(move || {
        for (due, bytes) in rx {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if to.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// `host:port` of a `postgres://` URL, and the URL pointed at `port` on 127.0.0.1 instead.
pub fn redirect(url: &str, port: u16) -> Option<(String, String)> {
    let rest = url.split_once("://")?.1;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_keeps_user_and_database() {
        let (up, url) = redirect("postgres://postgres@127.0.0.1:5432/app", 9).unwrap();
        assert_eq!(up, "127.0.0.1:5432");
        assert_eq!(url, "postgres://postgres@127.0.0.1:9/app");
        let (up, _) = redirect("postgres://u:p@db/app?sslmode=disable", 9).unwrap();
        assert_eq!(up, "db:5432");
    }

    #[test]
    fn every_trip_is_delayed_once_and_pipelined_bytes_are_not_serialised() {
        // An echo server behind the proxy: one write and its echo is a round trip.
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = echo.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for s in echo.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        let delay = Duration::from_millis(50);
        let proxy = DelayProxy::start(upstream, delay).unwrap();
        let mut c = TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
        c.set_nodelay(true).unwrap();
        let start = Instant::now();
        // Ten messages sent back to back, then all ten echoes read: one delayed round trip.
        for i in 0..10u8 {
            c.write_all(&[i]).unwrap();
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        while got.len() < 10 {
            let n = c.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        let took = start.elapsed();
        assert_eq!(got, (0..10).collect::<Vec<u8>>());
        assert!(took >= 2 * delay, "each direction delayed: {took:?}");
        // One by one, ten round trips would take at least 20 delays.
        assert!(
            took < 10 * delay,
            "pipelined, not one delay per message: {took:?}"
        );
    }
}
