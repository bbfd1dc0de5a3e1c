//! The latency scenario: the no-op boot, the deploy and the apply again, every timed
//! connection going through a proxy on loopback that adds a fixed round-trip time (half each
//! way; see [`crate::proxy`]): where round trips, not the server, decide.

use std::path::Path;
use std::time::Instant;

use preflight_runtime::testing::{self, TestDatabase};
use tokio::runtime::Runtime;

use crate::gen::Shape;
use crate::proxy::{redirect, DelayProxy};
use crate::report::Table;
use crate::scenarios::{self, Plan};
use crate::stats::{fmt_ms, Samples};

/// The tables; the first one's method states the round trip measured through the proxy.
pub fn latency(rt: &Runtime, work: &Path, plan: &Plan) -> Vec<Table> {
    let rtt = plan.latency;
    let admin = testing::server_url();
    let Some((upstream, _)) = redirect(admin, 0) else {
        return vec![Table::new("Latency: needs a postgres:// URL")];
    };
    let proxy = match DelayProxy::start(upstream, rtt / 2) {
        Ok(p) => p,
        Err(e) => return vec![Table::new(format!("Latency: cannot start the proxy: {e}"))],
    };
    let route = |url: &str| proxy.url(url);
    let tag = format!(" ({} added round trip)", fmt_ms(rtt.as_secs_f64() * 1000.0));
    let measured = measure_round_trip(&proxy);
    let mut tables = vec![
        scenarios::noop(rt, work, plan, plan.deploy_base, &route, &tag),
        scenarios::deploy(rt, work, plan, &route, &tag),
    ];
    if let Some(&n) = plan.sizes.iter().find(|&&n| n >= plan.deploy_base) {
        tables.push(scenarios::apply(
            rt,
            work,
            plan,
            Shape::Light,
            n,
            &route,
            &tag,
        ));
    }
    if let Some(first) = tables.first_mut() {
        first.method.insert(
            0,
            format!(
                "Every timed connection goes through a proxy on loopback (in this binary) that \
                 holds each chunk {} in each direction, in order, so pipelined requests stay \
                 pipelined; setup and checks go direct. Measured through it: {measured}.",
                fmt_ms(rtt.as_secs_f64() * 500.0)
            ),
        );
    }
    tables
}

/// `SELECT 1` round trips on one connection, through the proxy and direct: the medians and
/// their difference, the round trip the proxy really adds (timer slack included).
fn measure_round_trip(proxy: &DelayProxy) -> String {
    let db = TestDatabase::empty();
    let time = |url: &str| -> Result<Samples, String> {
        let mut c = postgres::Client::connect(url, postgres::NoTls).map_err(|e| e.to_string())?;
        let mut s = Samples::default();
        for _ in 0..200 {
            let t = Instant::now();
            c.simple_query("SELECT 1").map_err(|e| e.to_string())?;
            s.push(t.elapsed());
        }
        Ok(s)
    };
    match (time(&proxy.url(db.url())), time(db.url())) {
        (Ok(through), Ok(direct)) => {
            let (a, b) = (
                through.median().unwrap_or(0.0),
                direct.median().unwrap_or(0.0),
            );
            format!(
                "`SELECT 1` takes {} through the proxy and {} direct (medians of 200), {} added",
                fmt_ms(a),
                fmt_ms(b),
                fmt_ms(a - b)
            )
        }
        (Err(e), _) | (_, Err(e)) => format!("(round trip not measured: {e})"),
    }
}
